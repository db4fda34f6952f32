//! Serves the built dashboard and proxies `/api` and `/ws` to the backend, so the page talks to
//! its own origin (no CORS, one port to open). Unknown paths answer `index.html` for deep links.

#![warn(missing_docs)]

mod proxy;
mod ws_proxy;

use axum::Router;
use axum::routing::{any, get};
use std::future::Future;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

/// What to serve and where to proxy to.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder made by `dashboard/build-web.sh`.
    pub dist: PathBuf,
    /// The backend's origin, e.g. `http://127.0.0.1:8000`.
    pub backend: String,
}

/// Why the dashboard could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The dist folder (named here) has no `index.html`: the dashboard was not built.
    #[error("{0} has no index.html; build it with dashboard/build-web.sh")]
    NoDist(PathBuf),
    /// The backend URL (given here, without a trailing `/`) is not `http://` or `https://`.
    #[error("the backend URL must start with http:// or https://, not {0:?}")]
    BadBackend(String),
    /// The proxy's HTTP client could not be built, or serving the listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
struct Upstream {
    http: reqwest::Client,
    base: String,
}

fn router(config: &Config) -> Result<Router, ServeError> {
    let index = config.dist.join("index.html");
    if !index.is_file() {
        return Err(ServeError::NoDist(config.dist.clone()));
    }
    let base = config.backend.trim_end_matches('/').to_owned();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ServeError::BadBackend(base));
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let upstream = Upstream { http, base };
    let files = ServeDir::new(&config.dist).fallback(ServeFile::new(index));
    Ok(Router::new()
        .route("/api/{*rest}", any(proxy::forward))
        .route("/ws", get(ws_proxy::upgrade))
        .fallback_service(files)
        .with_state(upstream))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = router(config)?;
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
