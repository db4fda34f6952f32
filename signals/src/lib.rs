//! When a long-running binary should stop. Its own crate because the backend, the agent and the
//! dashboard server all need it, and `protocol`, their other shared crate, stays free of tokio.

#![warn(missing_docs)]

/// Resolves on Ctrl+C, or SIGTERM on Unix (what `docker stop` and systemd send).
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a handler the default action still ends the process, only not gracefully.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
