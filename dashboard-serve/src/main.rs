use anyhow::Context;
use clap::Parser;
use dashboard_serve::Config;
use std::path::PathBuf;

/// Serves the built dashboard and proxies /api and /ws to the backend.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "DASHBOARD_ADDR", default_value = "127.0.0.1:1337")]
    listen: String,
    /// The backend's origin.
    #[arg(long, env = "BACKEND_URL", default_value = "http://127.0.0.1:8000")]
    backend: String,
    /// The folder made by dashboard/build-web.sh.
    #[arg(long, env = "DASHBOARD_DIST", default_value = "dashboard-dist")]
    dist: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("no local address")?;
    let config = Config { dist: args.dist, backend: args.backend };
    tracing::info!(backend = %config.backend, "dashboard listening on http://{addr}");
    dashboard_serve::serve(listener, &config, signals::shutdown())
        .await
        .context("dashboard server failed")
}
