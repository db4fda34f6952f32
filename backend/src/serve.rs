//! The HTTP/1.1 server loop, plain or over TLS, with the limits that `axum::serve` leaves out: a deadline for
//! request headers (which also bounds an idle keep-alive connection), a cap on open
//! connections and on those of one address, a deadline for writes to a client that reads
//! nothing, and a bounded graceful shutdown. Without them, 500 sockets that send half a
//! header stay open forever.

use crate::conn_guard::{PerAddress, WriteDeadline};
use crate::tls::Acceptor;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Connection limits; every one has a default in the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// From a connection's start, or the end of its last response, to the end of the next
    /// request's header.
    pub(crate) header_timeout: Duration,
    pub(crate) max_connections: usize,
    /// Of those, the most from one client address.
    pub(crate) max_per_address: usize,
    /// How long a write may wait for a client that reads nothing.
    pub(crate) write_timeout: Duration,
    /// How long requests in flight may take to finish once shutdown begins.
    pub(crate) shutdown_grace: Duration,
}

/// Serves `router` (over TLS with `tls`) until `signal` resolves, then stops accepting, asks
/// every connection to close after its current request, and waits at most `shutdown_grace` for
/// them. A TLS connection counts under the cap from its first byte, and its handshake must end
/// within `header_timeout`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Acceptor>,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_per_address);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut signal = std::pin::pin!(signal);
    loop {
        // A free slot first: past the cap, new connections wait in the kernel's backlog
        // instead of taking memory here.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut signal => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let Some(counted) = per_address.admit(remote.ip()) else {
            // A TLS client could not read a plain answer: it is only closed.
            if tls.is_none() {
                tokio::spawn(refuse(stream, limits.max_per_address));
            }
            continue;
        };
        let stream = WriteDeadline::new(stream, limits.write_timeout);
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permits = (permit, counted);
            let Some(tls) = tls else {
                return connection(TokioIo::new(stream), router, remote, limits, stop).await;
            };
            let stream = tokio::select! {
                tls = tls.handshake(stream, limits.header_timeout) => tls,
                // No request has begun on it: nothing to finish.
                _ = stop.wait_for(|s| *s) => None,
            };
            if let Some(stream) = stream {
                connection(TokioIo::new(stream), router, remote, limits, stop).await;
            }
        });
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    let _ = stop_tx.send(true);
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all)).await.is_err() {
        tracing::warn!(
            grace_s = limits.shutdown_grace.as_secs(),
            open = limits.max_connections - permits.available_permits(),
            "connections still open after the shutdown grace; closing them"
        );
    }
}

/// HTTP/1.1 on one connection, plain or TLS, until it closes or shutdown asks it to.
async fn connection<I>(
    io: I,
    router: Router,
    remote: SocketAddr,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => log_end(result),
        _ = async { stop.wait_for(|s| *s).await.map(drop) } => {
            conn.as_mut().graceful_shutdown();
            log_end(conn.await);
        }
    }
}

/// The answer to a connection past its address's share, sent without reading its request.
async fn refuse(mut stream: tokio::net::TcpStream, cap: usize) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::json!({
        "detail": format!(
            "this address already holds {cap} connections; close some, or raise \
             MAX_CONNECTIONS_PER_ADDRESS if many clients share it (a proxy)"
        ),
        "code": protocol::codes::TOO_MANY_CONNECTIONS,
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(answer.as_bytes())).await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // A client that went away or sent garbage is no fault of ours.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
