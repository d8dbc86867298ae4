//! Command line: `fdfs-ha run|check|status|upload|download|delete|info|monitor`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Validate a config file: exit 0, or print every error with its key path and line.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run every component the config enables, in one process.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { config } => match fdfs_ha::config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                ExitCode::from(2)
            }
        },
        Cmd::Run { config } => {
            let cfg = match fdfs_ha::config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(&cfg.log.level))
                .init();
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            match rt.block_on(fdfs_ha::supervisor::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fdfs-ha: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
