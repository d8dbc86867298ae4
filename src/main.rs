//! Command line: `fdfs-ha run|check|status|import` and the FastDFS client subcommands
//! `upload|download|delete|info|monitor` (all taking `--tracker HOST:PORT`, repeatable).
//!
//! Exit codes:
//! - `0`: clean stop (SIGTERM/SIGINT handled gracefully), `check` found no error, `status` printed.
//! - `1`: runtime failure: a component could not start (e.g. port in use), VRRP could not start
//!   (e.g. not root) or stopped unexpectedly, the status endpoint is unreachable.
//! - `2`: config error: every error is printed as `<key path>: line <n>: <message>`.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

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
    /// Validate a config file: exit 0, or print every error with its key path and line (exit 2).
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run every component the config enables, in one process.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show VRRP instances, probes and components of the running node (from its status endpoint).
    Status {
        /// Config of the node (its `status.listen` is used); default 127.0.0.1:8399.
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
    /// Upload a local file (fdfs_upload_file); prints the file ID.
    Upload {
        file: PathBuf,
        #[command(flatten)]
        trackers: TrackerArgs,
    },
    /// Download a file by ID to OUT (default: its name in the current directory).
    Download {
        id: String,
        out: Option<PathBuf>,
        #[command(flatten)]
        trackers: TrackerArgs,
    },
    /// Delete a file by ID.
    Delete {
        id: String,
        #[command(flatten)]
        trackers: TrackerArgs,
    },
    /// Show what a file ID encodes and what its storage reports (fdfs_file_info).
    Info {
        id: String,
        #[command(flatten)]
        trackers: TrackerArgs,
    },
    /// Groups, storages, status and free space (fdfs_monitor).
    Monitor {
        #[command(flatten)]
        trackers: TrackerArgs,
    },
}

#[derive(clap::Args)]
struct TrackerArgs {
    /// Tracker address HOST:PORT (repeatable; default 127.0.0.1:22122).
    #[arg(long = "tracker", value_name = "HOST:PORT")]
    tracker: Vec<String>,
}

/// Runs one client subcommand: prints its output, or the error and exits 1.
fn client_command<F>(trackers: &TrackerArgs, f: F) -> ExitCode
where
    F: for<'a> FnOnce(
        &'a fdfs_ha::client::FdfsClient,
    ) -> futures::future::BoxFuture<
        'a,
        Result<String, fdfs_ha::client::ClientError>,
    >,
{
    let addrs = match fdfs_ha::client::cli::trackers(&trackers.tracker) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fdfs-ha: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
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
    let client = fdfs_ha::client::FdfsClient::new(addrs);
    match rt.block_on(f(&client)) {
        Ok(out) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fdfs-ha: {e}");
            ExitCode::from(EXIT_RUNTIME)
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

fn main() -> ExitCode {
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
        Cmd::Run { config } => run(config),
        Cmd::Import {
            files,
            dir,
            output,
            node,
        } => import(files, dir, output, node),
        Cmd::Status { config, addr, json } => status(config, addr, json),
        Cmd::Upload { file, trackers } => client_command(&trackers, move |c| {
            Box::pin(async move { fdfs_ha::client::cli::upload(c, &file).await })
        }),
        Cmd::Download { id, out, trackers } => client_command(&trackers, move |c| {
            Box::pin(async move { fdfs_ha::client::cli::download(c, &id, out).await })
        }),
        Cmd::Delete { id, trackers } => client_command(&trackers, move |c| {
            Box::pin(async move { fdfs_ha::client::cli::delete(c, &id).await })
        }),
        Cmd::Info { id, trackers } => client_command(&trackers, move |c| {
            Box::pin(async move { fdfs_ha::client::cli::info(c, &id).await })
        }),
        Cmd::Monitor { trackers } => client_command(&trackers, move |c| {
            Box::pin(async move { fdfs_ha::client::cli::monitor(c).await })
        }),
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

fn run(path: PathBuf) -> ExitCode {
    let checked = match fdfs_ha::config::check_file(&path) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let cfg = checked.config;
    fdfs_ha::logs::init(&cfg.log);
    for w in &checked.warnings {
        tracing::warn!(warning = %w, "config warning");
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs-ha: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match rt.block_on(fdfs_ha::supervisor::run(cfg, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fdfs-ha failed");
            eprintln!("fdfs-ha: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn status(config: Option<PathBuf>, addr: Option<SocketAddr>, json: bool) -> ExitCode {
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
