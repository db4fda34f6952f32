use backend::settings::{Args, Settings};
use backend::startup::{Application, healthcheck};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.healthcheck {
        let addr = std::net::SocketAddr::new(args.host, args.port);
        let healthy = healthcheck(addr, args.tls_cert.is_some()).await;
        return if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let settings = match Settings::from_args(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backend: {e}");
            return ExitCode::from(2);
        }
    };
    backend::telemetry::init(settings.log_format);
    let result = async { Application::build(settings).await?.run_until(signals::shutdown()).await };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("backend: {e:#}");
            ExitCode::FAILURE
        }
    }
}
