//! Probes (keepalived's vrrp_script + nginx_check.sh), the supervisor's restart policy and
//! external components: the `probes`, `supervisor` and `external` sections.

use crate::config::values::Dur;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub name: String,
    /// `host:port` to connect to.
    #[serde(default)]
    pub tcp: Option<String>,
    /// URL to GET; healthy on `expect_status` (default 2xx/3xx) and optional body match.
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub expect_status: Option<u16>,
    #[serde(default)]
    pub expect_body: Option<String>,
    /// `host:port` of a tracker or storage answering ACTIVE_TEST.
    #[serde(default)]
    pub fastdfs: Option<String>,
    /// Name of an `external` component whose process must be alive.
    #[serde(default)]
    pub process: Option<String>,
    /// Command (argv) whose exit status 0 means healthy.
    #[serde(default)]
    pub exec: Option<Vec<String>>,
    #[serde(default = "default_probe_interval")]
    pub interval: Dur,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Dur,
    #[serde(default = "default_rise_fall")]
    pub rise: u32,
    #[serde(default = "default_rise_fall")]
    pub fall: u32,
    /// `restart: <component>` restarts that component when the probe fails; `none` only reports.
    #[serde(default)]
    pub on_fail: OnFail,
    /// Component restarted when `on_fail: restart` (default: inferred from the target port).
    #[serde(default)]
    pub component: Option<String>,
}

fn default_probe_interval() -> Dur {
    Dur::secs(2)
}
fn default_probe_timeout() -> Dur {
    Dur::secs(1)
}
fn default_rise_fall() -> u32 {
    2
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    #[default]
    None,
    Restart,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    /// First restart delay; doubles per failure up to `restart_backoff_max`.
    #[serde(default = "default_backoff_min")]
    pub restart_backoff_min: Dur,
    #[serde(default = "default_backoff_max")]
    pub restart_backoff_max: Dur,
    /// After this many restarts within `restart_window` the node yields (FAULT) so the VIP moves.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "default_restart_window")]
    pub restart_window: Dur,
    /// Time given to components to finish in-flight requests on stop.
    #[serde(default = "default_drain")]
    pub drain_timeout: Dur,
    /// While a healthy component is being restarted, the probes watching it keep their healthy
    /// verdict this long, so a quick restart does not move the VIP (nginx_check.sh's `sleep 2`).
    #[serde(default = "default_restart_grace")]
    pub restart_grace: Dur,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            restart_backoff_min: default_backoff_min(),
            restart_backoff_max: default_backoff_max(),
            max_restarts: default_max_restarts(),
            restart_window: default_restart_window(),
            drain_timeout: default_drain(),
            restart_grace: default_restart_grace(),
        }
    }
}
fn default_restart_grace() -> Dur {
    Dur::secs(2)
}
pub(super) fn default_backoff_min() -> Dur {
    Dur::millis(100)
}
pub(super) fn default_backoff_max() -> Dur {
    Dur::secs(10)
}
fn default_max_restarts() -> u32 {
    5
}
fn default_restart_window() -> Dur {
    Dur::secs(60)
}
fn default_drain() -> Dur {
    Dur::secs(5)
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExternalComponent {
    pub name: String,
    pub command: Vec<String>,
}
