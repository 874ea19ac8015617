//! The `confgate` binary: see `confgate --help`.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use confgate::cli::{self, Cli, Command};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli::load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::CheckConfig => {
            print!("{}", config.to_toml());
            eprintln!("confgate: configuration is valid");
            ExitCode::SUCCESS
        }
        Command::Serve => {
            let filter = EnvFilter::try_new(&config.server.log).unwrap_or_else(|_| EnvFilter::new("info"));
            let (layer, handle) = reload::Layer::new(filter);
            tracing_subscriber::registry()
                .with(layer)
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                        .with_target(false),
                )
                .init();
            let log_reload: confgate::daemon::LogReload = Arc::new(move |spec: &str| {
                let f = EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
                handle.reload(f).map_err(|e| e.to_string())
            });
            match runtime.block_on(confgate::daemon::serve(cli.config.clone(), config, log_reload)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("confgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bot(args) => {
            let socket = args
                .socket
                .clone()
                .unwrap_or_else(|| config.loopback.socket_path(&config.server.data_dir));
            match runtime.block_on(confgate::bot::run(args, socket)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("confgate bot: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        command => match runtime.block_on(cli::manage(&config, command)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("confgate: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
