//! Command line: `fdfs-ha run|check|status|import` and the FastDFS client verbs
//! `upload|upload-appender|append|modify|truncate|regenerate|download|delete|info|crc32|monitor`
//! (taking client.conf with `-c` or first, as the fdfs_* tools do, or `--tracker HOST:PORT`).
//!
//! Exit codes:
//! - `0`: clean stop (SIGTERM/SIGINT handled gracefully), `check` found no error, `status` printed.
//! - `1`: runtime failure: a component could not start (e.g. port in use), VRRP could not start
//!   (e.g. not root) or stopped unexpectedly, the status endpoint is unreachable.
//! - `2`: config error: every error is printed as `<file>:<line>:<column>: <key path>: <message>`,
//!   then their count.
//! - `import`: 0 with the ha.yaml written; 2 when an input has a syntax error (printed with its
//!   file:line); 1 when the output does not pass `check` (it is still written, to inspect).
//! - client verbs: the errno the server answered when it refused (e.g. 2 = ENOENT, 22 =
//!   EINVAL), 1 on other failures, 2 on bad arguments or an unreadable client.conf.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;
/// Where `run` and `check` look when `-c` is not given (the .deb installs it there).
const DEFAULT_CONFIG: &str = "/etc/fdfs-ha/ha.yaml";

#[derive(Parser)]
#[command(
    name = "fdfs-ha",
    version,
    about = "FastDFS tracker + storage + HTTP gateway + VRRP in one binary"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a config file: exit 0, or print every error as file:line:column and key path (exit 2).
    Check {
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run every component the config enables, in one process.
    Run {
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Write the process id to this file (overrides `pid_file` in the config).
        #[arg(long)]
        pidfile: Option<PathBuf>,
    },
    /// Show VRRP instances, probes and components of the running node (from its status endpoint).
    Status {
        /// Config of the node (its `status.listen` is used); default /etc/fdfs-ha/ha.yaml if it
        /// exists, else 127.0.0.1:8399.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Status endpoint address; overrides the config.
        #[arg(long)]
        addr: Option<SocketAddr>,
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Translate keepalived.conf, tracker/storage/client/mod_fastdfs.conf, nginx.conf (with its
    /// includes) and nginx_check.sh-like scripts of one node into an annotated ha.yaml. Warnings
    /// (keys not mapped, changed behaviour, quirks) go to stderr and into the file.
    Import {
        /// Input files (any mix; each is recognised by name and content).
        files: Vec<PathBuf>,
        /// Import every file under this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where to write ha.yaml (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Node name (default: keepalived's router_id).
        #[arg(long)]
        node: Option<String>,
    },
    /// Upload a file (fdfs_upload_file): `[client.conf] FILE [STORAGE_IP:PORT [STORE_PATH_INDEX]]`;
    /// prints the file ID. The extension follows fdfs_upload_file (`x.tar.gz` -> `tar.gz`).
    Upload(ClientVerb),
    /// Upload an appender file (fdfs_upload_appender): `[client.conf] FILE`.
    UploadAppender(ClientVerb),
    /// Append a local file to an appender file (fdfs_append_file): `[client.conf] ID FILE`.
    Append(ClientVerb),
    /// Overwrite an appender file from OFFSET with a local file: `[client.conf] ID OFFSET FILE`.
    Modify(ClientVerb),
    /// Truncate an appender file: `[client.conf] ID [SIZE]` (default 0).
    Truncate(ClientVerb),
    /// Turn an appender file into a normal file (REGENERATE_APPENDER_FILENAME, cmd 38):
    /// `[client.conf] ID`; prints the new file ID.
    Regenerate(ClientVerb),
    /// Download (fdfs_download_file): `[client.conf] ID [LOCAL_FILE [OFFSET LENGTH]]`.
    Download(ClientVerb),
    /// Delete a file (fdfs_delete_file): `[client.conf] ID`.
    Delete(ClientVerb),
    /// What a file ID encodes and what its storage reports (fdfs_file_info): `[client.conf] ID`.
    Info(ClientVerb),
    /// CRC-32 of a local file, in decimal (fdfs_crc32).
    Crc32 { file: PathBuf },
    /// Groups, storages, status and free space (fdfs_monitor): `[client.conf]`.
    Monitor(ClientVerb),
    /// Write the man pages (fdfs-ha.1 and one per subcommand) into DIR; used for packaging.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// A VRRP instance's VIP guard, spawned by `run` (see fdfs_ha::vrrp::guard); reads stdin.
    #[command(hide = true, name = "vip-guard")]
    VipGuard,
}

/// Arguments every client verb takes. client.conf may be given with `-c` or, as the fdfs_* tools
/// take it, as the first argument; `--tracker` (repeatable) overrides its tracker_server lines.
#[derive(clap::Args)]
struct ClientVerb {
    /// client.conf (tracker_server, connect_timeout, network_timeout, use_storage_id).
    #[arg(short = 'c', long = "conf", value_name = "CLIENT_CONF")]
    conf: Option<PathBuf>,
    /// Tracker address HOST:PORT (repeatable; default: client.conf's, else 127.0.0.1:22122).
    #[arg(long = "tracker", value_name = "HOST:PORT")]
    tracker: Vec<String>,
    /// The verb's arguments (see its description).
    args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Upload,
    UploadAppender,
    Append,
    Modify,
    Truncate,
    Regenerate,
    Download,
    Delete,
    Info,
    Monitor,
}

/// The positional arguments each verb takes after the optional client.conf (min, max, usage).
fn verb_args(v: Verb) -> (usize, usize, &'static str) {
    match v {
        Verb::Upload => (1, 3, "FILE [STORAGE_IP:PORT [STORE_PATH_INDEX]]"),
        Verb::UploadAppender => (1, 1, "FILE"),
        Verb::Append => (2, 2, "APPENDER_ID FILE"),
        Verb::Modify => (3, 3, "APPENDER_ID OFFSET FILE"),
        Verb::Truncate => (1, 2, "APPENDER_ID [SIZE]"),
        Verb::Regenerate | Verb::Delete | Verb::Info => (1, 1, "FILE_ID"),
        Verb::Download => (1, 4, "FILE_ID [LOCAL_FILE [OFFSET LENGTH]]"),
        Verb::Monitor => (0, 0, ""),
    }
}

/// Runs one client verb: prints its output; exits with the errno the server answered when it
/// refused (e.g. 2 = ENOENT), 1 on other failures, 2 on bad arguments or client.conf.
fn client_verb(verb: Verb, v: ClientVerb) -> ExitCode {
    let mut args = v.args;
    let (min, max, usage) = verb_args(verb);
    // fdfs_upload_file takes the config first: `upload /etc/fdfs/client.conf FILE`.
    let mut conf = v.conf;
    if conf.is_none() && args.len() > min && args.first().is_some_and(|a| a.ends_with(".conf")) {
        conf = Some(PathBuf::from(args.remove(0)));
    }
    if args.len() < min || args.len() > max || (verb == Verb::Download && args.len() == 3) {
        eprintln!("fdfs-ha: usage: [-c client.conf | client.conf] {usage}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    let (client, cc, warnings) =
        match fdfs_ha::client::cli::make_client(conf.as_deref(), &v.tracker) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fdfs-ha: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
    for w in warnings {
        eprintln!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs-ha: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    use fdfs_ha::client::cli;
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let run = async {
        let r = match verb {
            Verb::Upload | Verb::UploadAppender => {
                let storage = match args.get(1) {
                    Some(s) => Some(s.parse().map_err(|_| format!("{s:?} is not IP:PORT"))?),
                    None => None,
                };
                let store_path_index = match args.get(2) {
                    Some(s) => Some(s.parse().map_err(|_| format!("{s:?} is not 0..255"))?),
                    None => None,
                };
                let o = cli::UploadOpts {
                    storage,
                    store_path_index,
                    appender: verb == Verb::UploadAppender,
                };
                cli::upload(&client, &cc, std::path::Path::new(a(0)), &o).await
            }
            Verb::Append => cli::append(&client, &cc, a(0), std::path::Path::new(a(1))).await,
            Verb::Modify => {
                let off = num(a(1))?;
                cli::modify(&client, a(0), off, std::path::Path::new(a(2))).await
            }
            Verb::Truncate => {
                let size = if args.len() > 1 { num(a(1))? } else { 0 };
                cli::truncate(&client, a(0), size).await
            }
            Verb::Regenerate => cli::regenerate(&client, a(0)).await,
            Verb::Download => {
                let (off, len) = if args.len() == 4 {
                    (num(a(2))?, num(a(3))?)
                } else {
                    (0, 0)
                };
                cli::download(&client, &cc, a(0), args.get(1).map(PathBuf::from), off, len).await
            }
            Verb::Delete => cli::delete(&client, a(0)).await,
            Verb::Info => cli::info(&client, a(0), cc.use_storage_id).await,
            Verb::Monitor => cli::monitor(&client).await,
        };
        Ok::<_, String>(r)
    };
    match rt.block_on(run) {
        Err(usage_error) => {
            eprintln!("fdfs-ha: {usage_error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Ok(Ok(out)) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("fdfs-ha: {e}");
            match e.status() {
                Some(s) if s != 0 => ExitCode::from(s),
                _ => ExitCode::from(EXIT_RUNTIME),
            }
        }
    }
}

fn print_errors(errors: &[fdfs_ha::config::ConfigError]) {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!(
        "{} error{}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
}

/// Fixes glibc's mmap threshold (and trims freed heap tops early): by default the threshold
/// rises to the largest block freed, so after the first 512 KiB receive buffer every later one
/// comes from the heap and stays resident. A catching-up storage receiving 1 MiB files held
/// 17 MB of anonymous memory that way, 1.5 MB with the threshold fixed, at the same speed
/// (issue 27.2, `catchup_bench`). Two arenas, not glibc's eight per core: each thread that
/// allocates would get its own arena, which keeps what a burst left behind (a newcomer's 7
/// threads held 2.4-2.6 MiB that way, 1.9-2.0 MiB with two arenas).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_malloc() {
    // SAFETY: mallopt only sets allocator parameters; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc() {}

fn main() -> ExitCode {
    bound_malloc();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { config } => match fdfs_ha::config::check_file(&config) {
            Ok(checked) => {
                for w in &checked.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                print_errors(&errors);
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Cmd::Run { config, pidfile } => run(config, pidfile),
        Cmd::VipGuard => ExitCode::from(fdfs_ha::vrrp::guard::main()),
        Cmd::Import {
            files,
            dir,
            output,
            node,
        } => import(files, dir, output, node),
        Cmd::Status { config, addr, json } => status(config, addr, json),
        Cmd::Upload(v) => client_verb(Verb::Upload, v),
        Cmd::UploadAppender(v) => client_verb(Verb::UploadAppender, v),
        Cmd::Append(v) => client_verb(Verb::Append, v),
        Cmd::Modify(v) => client_verb(Verb::Modify, v),
        Cmd::Truncate(v) => client_verb(Verb::Truncate, v),
        Cmd::Regenerate(v) => client_verb(Verb::Regenerate, v),
        Cmd::Download(v) => client_verb(Verb::Download, v),
        Cmd::Delete(v) => client_verb(Verb::Delete, v),
        Cmd::Info(v) => client_verb(Verb::Info, v),
        Cmd::Monitor(v) => client_verb(Verb::Monitor, v),
        Cmd::Man { dir } => {
            use clap::CommandFactory;
            let r = std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir));
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fdfs-ha man: {}: {e}", dir.display());
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
        Cmd::Crc32 { file } => match fdfs_ha::client::cli::crc32(&file) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fdfs-ha: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
    }
}

/// `fdfs-ha import`: exit 0 with the ha.yaml written, 2 on a syntax error in an input, 1 when the
/// output cannot be written or does not pass `check` (it is still written, for inspection).
fn import(
    mut files: Vec<PathBuf>,
    dir: Option<PathBuf>,
    output: Option<PathBuf>,
    node: Option<String>,
) -> ExitCode {
    if let Some(d) = dir {
        match fdfs_ha::import::files_in_dir(&d) {
            Ok(f) => files.extend(f),
            Err(e) => {
                eprintln!("fdfs-ha import: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    if files.is_empty() {
        eprintln!("fdfs-ha import: no input files (give FILES or --dir DIR)");
        return ExitCode::from(EXIT_CONFIG);
    }
    let opts = fdfs_ha::import::Options { node };
    let imported = match fdfs_ha::import::import_files(&files, &opts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("fdfs-ha import: error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for (f, k) in &imported.files {
        eprintln!("read {f} as {}", k.name());
    }
    for w in &imported.warnings {
        eprintln!("{w}");
    }
    eprintln!("{} warning(s)", imported.warnings.len());
    match &output {
        Some(o) => {
            if let Err(e) = std::fs::write(o, &imported.yaml) {
                eprintln!("fdfs-ha import: cannot write {}: {e}", o.display());
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
        None => print!("{}", imported.yaml),
    }
    match fdfs_ha::config::check_str(&imported.yaml) {
        Ok(_) => ExitCode::SUCCESS,
        Err(errors) => {
            eprintln!("the imported config does not pass `check`:");
            print_errors(&errors);
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn run(path: PathBuf, pidfile: Option<PathBuf>) -> ExitCode {
    let checked = match fdfs_ha::config::check_file(&path) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let cfg = checked.config;
    fdfs_ha::logs::init(&cfg.log);
    fdfs_ha::vrrp::guard::enable(cfg.log.format == "json");
    for w in &checked.warnings {
        tracing::warn!(warning = %w, "config warning");
    }
    // Before any thread exists (see fdfs_ha::systemd): the pid file first, while still root.
    let _pidfile = match pidfile.as_ref().or(cfg.pid_file.as_ref()) {
        Some(p) => match fdfs_ha::systemd::PidFile::create(p) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("fdfs-ha: pid file {}: {e}", p.display());
                return ExitCode::from(EXIT_RUNTIME);
            }
        },
        None => None,
    };
    match fdfs_ha::systemd::drop_privileges(&cfg) {
        Ok(Some(what)) => tracing::info!("{what}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("fdfs-ha: cannot drop privileges: {e:#}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs-ha: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = rt.block_on(fdfs_ha::supervisor::run(cfg, path));
    // Every component has stopped and settled its data by now (storage flushes and fsyncs
    // before it returns). Dropping the runtime would also wait for any blocking-pool thread
    // still busy (a name lookup, a stray read): bound that, so SIGTERM ends the process
    // promptly (issue 26.4: exited 1.7-2.0 s after logging `stopped`; C's storaged 0.49 s).
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fdfs-ha failed");
            eprintln!("fdfs-ha: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn status(config: Option<PathBuf>, addr: Option<SocketAddr>, json: bool) -> ExitCode {
    // An installed node's config, when there is one.
    let config = config.or_else(|| {
        let p = PathBuf::from(DEFAULT_CONFIG);
        p.exists().then_some(p)
    });
    let addr = match (addr, config) {
        (Some(a), _) => a,
        (None, Some(path)) => match fdfs_ha::config::check_file(&path) {
            Ok(c) => match c.config.status.listen {
                Some(a) => a,
                None => {
                    eprintln!("{}: status.listen is disabled", path.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            },
            Err(errors) => {
                print_errors(&errors);
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 8399)),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs-ha: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match rt.block_on(fdfs_ha::supervisor::status::fetch(addr)) {
        Ok(doc) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            } else {
                print!("{}", fdfs_ha::supervisor::status::render_text(&doc));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fdfs-ha status: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// C's `pow`, from the `libm` crate: tokio's scheduler (its poll-time average) is the only caller
/// in this binary, and defining it here lets the linker leave glibc's libm.so out. Loading
/// libm.so alone kept 0.5 MB mapped in every process (the loader runs its CPU-dispatch
/// resolvers at start).
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// C's `exp2`, for the same reason as `pow`: the optimiser turns `2.0f64.powf(i)` (the metrics'
/// histogram buckets, prometheus-client's `exponential_buckets`) into `exp2`, which had brought
/// libm.so back (0.4 MB of an idle storage's 9 MB on 2026-12-06).
#[no_mangle]
pub extern "C" fn exp2(x: f64) -> f64 {
    libm::exp2(x)
}
