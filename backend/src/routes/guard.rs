//! What a request passes before its handler, in this order: the `Host` rule, the credential its
//! route needs (from the headers alone), and only then its body, read whole within
//! `BODY_TIMEOUT`. A client without the credential is answered before it has sent the body, so
//! it cannot make the server take in `MAX_BODY_BYTES` first.

use super::AppState;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::{access, client_ip, is_local};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

/// Every request, first: the `Host` rule (see [`crate::security::access`]).
pub(crate) async fn check_host(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.security.access.check_host(req.headers())?;
    Ok(next.run(req).await)
}

#[derive(Debug, Clone, Copy)]
enum Need {
    Read,
    Admin,
}

/// Checks the request's credentials for `need`. A client past its limit of wrong ones is
/// refused before they are looked at; a wrong one counts against it. The session that proved
/// the role, if a session did, goes into the request for the handler (the live feed watches
/// it).
fn admit(
    state: &AppState,
    peer: SocketAddr,
    req: &mut Request,
    need: Need,
) -> Result<(), ApiError> {
    let (security, headers) = (&state.security, req.headers());
    let given = access::credentials(headers);
    let (client, now_ms) = (client_ip(peer, headers), now_ms());
    if !given.is_empty() {
        security.logins.check(client, now_ms)?;
    }
    let ended = state.sessions.current();
    let checked = security.access.check(&given, is_local(peer, headers), now_ms / 1000, &ended);
    let verdict = match need {
        Need::Read => security.access.authorize_read(&checked),
        Need::Admin => security.access.authorize_admin(&checked),
    };
    if verdict.is_err() && checked.guessed {
        security.logins.fail(client, now_ms);
    }
    verdict?;
    if let Some(claims) = checked.session {
        req.extensions_mut().insert(claims);
    }
    Ok(())
}

/// The reads: open, or with a read or admin credential.
pub(crate) async fn require_read(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    admit(&state, peer, &mut req, Need::Read)?;
    Ok(next.run(req).await)
}

/// Clearing, alert settings and revoking sessions: the admin credential.
pub(crate) async fn require_admin(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    admit(&state, peer, &mut req, Need::Admin)?;
    Ok(next.run(req).await)
}

/// `POST /api/ingest`: the API token; the signature, which needs the body, comes after it.
pub(crate) async fn require_api_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Err(refused) = state.security.check_token(req.headers(), peer) {
        let e = ApiError::from(refused);
        super::ingest::count_refusal(&state, &e);
        return Err(e);
    }
    Ok(next.run(req).await)
}

/// `POST /api/session`: a client past its limit of wrong credentials is refused before its
/// body is read.
pub(crate) async fn throttle_logins(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.security.logins.check(client_ip(peer, req.headers()), now_ms())?;
    Ok(next.run(req).await)
}

/// Reads the whole body within `body_timeout` before the handler runs: a client that drips a
/// body byte by byte would otherwise hold its connection and a task for as long as it likes
/// (a per-read timeout never fires on a slow drip).
pub(crate) async fn read_body_in_time(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let limit = state.max_body_bytes;
    let bytes =
        match tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) if is_length_limit(&e) => return Err(ApiError::TooLarge(limit)),
            Ok(Err(e)) => {
                return Err(ApiError::Invalid(format!("could not read the request body: {e}")));
            }
            Err(_) => return Err(ApiError::TimedOut(state.body_timeout.as_secs())),
        };
    Ok(next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await)
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
