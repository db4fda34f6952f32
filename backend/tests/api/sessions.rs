//! Sessions against the real server: the live feed authenticated without a credential in its
//! URL, sessions ended by a log-out, by "log out everywhere" and by their expiry (their sockets
//! closed too), across a restart, and wrong credentials throttled per client address.

use crate::helpers::*;
use crate::live::{Ws, next_json};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// Reads need a credential on these backends.
const READ: (&str, &str) = ("READ_TOKEN", harness::READER);

pub(crate) async fn login(server: &TestBackend, token: &str) -> (StatusCode, Value) {
    let request = server.http.post(server.url("/api/session"));
    split(request.json(&serde_json::json!({ "token": token })).send().await.unwrap()).await
}

/// A session of `token`'s role.
pub(crate) async fn session(server: &TestBackend, token: &str) -> String {
    let (status, body) = login(server, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session"].as_str().unwrap().to_owned()
}

pub(crate) async fn get_with(server: &TestBackend, path: &str, session: &str) -> StatusCode {
    let request = server.http.get(server.url(path)).bearer_auth(session);
    request.send().await.unwrap().status()
}

/// The live feed as a browser opens it: the session in the subprotocols it offers.
pub(crate) async fn live(
    server: &TestBackend,
    offered: &str,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut request = server.ws_url("").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", offered.parse().unwrap());
    tokio_tungstenite::connect_async(request).await
}

/// The subprotocols a browser offers with `session`.
pub(crate) fn offer(session: &str) -> String {
    format!("{}, {}", protocol::live_auth::PROTOCOL, protocol::live_auth::bearer(session))
}

fn refused_with(result: Result<impl Sized, tungstenite::Error>) -> StatusCode {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status(),
        Err(e) => panic!("refused without an HTTP answer: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// The close frame the server sends, within `within`.
pub(crate) async fn closed(ws: &mut Ws, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame within {within:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_live_feed_takes_a_session_from_its_subprotocols_and_none_from_its_url() {
    let server = TestBackend::start_with(&[READ]);
    let session = session(&server, harness::READER).await;
    let (mut ws, answer) = live(&server, &offer(&session)).await.expect("the upgrade");
    // Only the feed's own subprotocol comes back, never the credential.
    let selected = answer.headers()["sec-websocket-protocol"].to_str().unwrap();
    assert_eq!(selected, protocol::live_auth::PROTOCOL);
    crate::live::wait_for_clients(&server, 1.0).await;
    server.ingest(&batch("pc-1", 0)).await;
    assert_eq!(next_json(&mut ws).await["agent_id"], "pc-1");

    // Without the feed's subprotocol a browser would fail the handshake: said up front.
    let bare = protocol::live_auth::bearer(&session);
    assert_eq!(refused_with(live(&server, &bare).await), StatusCode::UNPROCESSABLE_ENTITY);
    let wrong = offer("s2.r.0.9999999999.00.00");
    assert_eq!(refused_with(live(&server, &wrong).await), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused_with(tokio_tungstenite::connect_async(server.ws_url("")).await),
        StatusCode::UNAUTHORIZED
    );
    // A credential in the URL is refused, even a good one, with what to send instead.
    let in_url =
        tokio_tungstenite::connect_async(server.ws_url(&format!("?access_token={session}")));
    assert_eq!(refused_with(in_url.await), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, err) = server.get(&format!("/ws?access_token={session}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["detail"].as_str().unwrap().contains("Authorization: Bearer"), "{err}");
    // Clients that are not browsers send the header, as to every other read.
    let mut request = server.ws_url("?agent_id=pc-1").into_client_request().unwrap();
    let bearer = format!("Bearer {}", harness::READER);
    request.headers_mut().insert("authorization", bearer.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn where_reads_are_open_the_live_feed_needs_no_credential_as_in_the_seed() {
    let server = TestBackend::start();
    assert!(tokio_tungstenite::connect_async(server.ws_url("")).await.is_ok());
    assert!(tokio_tungstenite::connect_async(server.ws_url("?agent_id=pc-1")).await.is_ok());
    // A browser offering the feed's subprotocol without a session gets it.
    assert!(live(&server, protocol::live_auth::PROTOCOL).await.is_ok());
}

#[tokio::test]
async fn a_log_out_ends_that_session_and_its_socket_and_no_other() {
    let server = TestBackend::start_with(&[READ]);
    let (leaving, staying) =
        (session(&server, harness::READER).await, session(&server, harness::READER).await);
    let (mut ws, _) = live(&server, &offer(&leaving)).await.unwrap();
    let (mut other, _) = live(&server, &offer(&staying)).await.unwrap();
    crate::live::wait_for_clients(&server, 2.0).await;

    let out = server.http.delete(server.url("/api/session")).bearer_auth(&leaving).send();
    assert_eq!(out.await.unwrap().status(), StatusCode::NO_CONTENT);
    let (code, reason) = closed(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("log in again"), "{reason}");
    assert_eq!(get_with(&server, "/api/agents", &leaving).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refused_with(live(&server, &offer(&leaving)).await), StatusCode::UNAUTHORIZED);

    assert_eq!(get_with(&server, "/api/agents", &staying).await, StatusCode::OK);
    server.ingest(&batch("pc-1", 0)).await;
    assert_eq!(next_json(&mut other).await["agent_id"], "pc-1", "the other socket stays");
    // A token is not a session: there is nothing to end.
    let token_out = server.http.delete(server.url("/api/session")).bearer_auth(harness::READER);
    assert_eq!(token_out.send().await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_even_after_a_restart() {
    let mut server = TestBackend::start_with(&[READ]);
    let reader = session(&server, harness::READER).await;
    let admin = session(&server, ADMIN).await;
    let (mut ws, _) = live(&server, &offer(&reader)).await.unwrap();
    crate::live::wait_for_clients(&server, 1.0).await;

    // Only an admin may.
    let by_reader = server.http.post(server.url("/api/session/revoke")).bearer_auth(&reader);
    assert_eq!(by_reader.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let revoke = server.http.post(server.url("/api/session/revoke")).bearer_auth(&admin);
    assert_eq!(revoke.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let (code, reason) = closed(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, 1008, "{reason}");
    for old in [&reader, &admin] {
        assert_eq!(get_with(&server, "/api/agents", old).await, StatusCode::UNAUTHORIZED);
    }
    // The tokens themselves still work, and make sessions that work.
    let fresh = session(&server, harness::READER).await;
    assert_eq!(get_with(&server, "/api/agents", &fresh).await, StatusCode::OK);

    server.restart();
    assert_eq!(get_with(&server, "/api/agents", &reader).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get_with(&server, "/api/agents", &fresh).await, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_session_is_refused_and_its_socket_closed() {
    let server = TestBackend::start_with(&[READ, ("SESSION_TTL", "2")]);
    let (_, body) = login(&server, harness::READER).await;
    let session = body["session"].as_str().unwrap().to_owned();
    let (mut ws, _) = live(&server, &offer(&session)).await.unwrap();
    let (code, reason) = closed(&mut ws, Duration::from_secs(6)).await;
    assert_eq!((code, reason.as_str()), (1008, "the session expired; log in again"));
    assert_eq!(get_with(&server, "/api/agents", &session).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refused_with(live(&server, &offer(&session)).await), StatusCode::UNAUTHORIZED);
}

/// A login through a proxy on this host, for the client it names.
async fn login_from(server: &TestBackend, client: &str, token: &str) -> reqwest::Response {
    let request = server.http.post(server.url("/api/session")).header("x-forwarded-for", client);
    request.json(&serde_json::json!({ "token": token })).send().await.unwrap()
}

#[tokio::test]
async fn wrong_credentials_are_throttled_per_address_and_a_success_does_not_reset_the_count() {
    let server = TestBackend::start_with(&[READ, ("LOGIN_MAX_FAILURES", "3")]);
    let guesser = "198.51.100.7";
    for _ in 0..2 {
        assert_eq!(login_from(&server, guesser, "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    // Logging in with a token one holds between guesses buys no more of them.
    assert_eq!(login_from(&server, guesser, harness::READER).await.status(), StatusCode::OK);
    let third = server.http.get(server.url("/api/agents")).header("x-forwarded-for", guesser);
    let third = third.bearer_auth("another-guess").send().await.unwrap();
    assert_eq!(third.status(), StatusCode::UNAUTHORIZED, "a guess sent with a read counts too");

    let refused = login_from(&server, guesser, harness::READER).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "not even the right token");
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let (_, err) = split(refused).await;
    assert_eq!(err["code"], "login_throttled");
    assert!(err["detail"].as_str().unwrap().contains("retry in"), "{err}");
    let read = server.http.get(server.url("/api/agents")).header("x-forwarded-for", guesser);
    let read = read.bearer_auth(harness::READER).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another address is not held back, nor is an expired or ended session a guess.
    assert_eq!(login_from(&server, "198.51.100.8", harness::READER).await.status(), StatusCode::OK);
    let own = session(&server, harness::READER).await;
    let out = server.http.delete(server.url("/api/session")).bearer_auth(&own).send();
    assert_eq!(out.await.unwrap().status(), StatusCode::NO_CONTENT);
    for _ in 0..5 {
        assert_eq!(get_with(&server, "/api/agents", &own).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&server, harness::READER).await.0, StatusCode::OK);
}
