use backend::settings::{Args, Settings};
use backend::startup::{Application, shutdown_signal};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_args(Args::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backend: {e}");
            return ExitCode::from(2);
        }
    };
    backend::telemetry::init(settings.log_format);
    let result = async { Application::build(settings).await?.run_until(shutdown_signal()).await };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("backend: {e:#}");
            ExitCode::FAILURE
        }
    }
}
