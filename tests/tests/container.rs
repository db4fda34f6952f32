//! The backend's Docker image, built from the shipped Dockerfile around the static binary, and
//! driven through the seed's whole API with testcontainers.

use futures_util::StreamExt;
use insta::assert_json_snapshot;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use testcontainers::core::wait::HttpWaitStrategy;
use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::{AsyncBuilder, AsyncRunner};
use testcontainers::{ContainerAsync, GenericBuildableImage, GenericImage, ImageExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "container-token";
const SECRET: &str = "container-secret";
/// The container listens beyond loopback, so reads need a credential and clearing the admin's.
const READER: &str = "container-reader";
const ADMIN: &str = "container-admin";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The static backend binary; `ci/test.sh` builds it before this suite runs.
fn musl_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let bin = target.join("x86_64-unknown-linux-musl/release/backend");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release -p backend --target x86_64-unknown-linux-musl` \
         (or ./ci/test.sh docker) first",
        bin.display()
    );
    bin
}

/// Builds the image from docker/backend.prebuilt.Dockerfile, the file users build offline.
async fn backend_image() -> GenericImage {
    let dockerfile =
        std::fs::read_to_string(workspace().join("docker/backend.prebuilt.Dockerfile")).unwrap();
    GenericBuildableImage::new("telemetry-backend-test", "latest")
        .with_dockerfile_string(dockerfile)
        .with_file(musl_binary(), "docker/backend")
        .with_file(workspace().join("docker/data/.keep"), "docker/data/.keep")
        .build_image()
        .await
        .expect("building the backend image")
}

struct Backend {
    container: ContainerAsync<GenericImage>,
    http: reqwest::Client,
}

async fn start(volume: &str, credentials: bool) -> Backend {
    let mut request = backend_image()
        .await
        .with_exposed_port(8000.tcp())
        .with_wait_for(WaitFor::http(
            HttpWaitStrategy::new("/healthz").with_expected_status_code(200u16),
        ))
        .with_mount(Mount::volume_mount(volume, "/data"));
    if credentials {
        request = request
            .with_env_var("API_TOKEN", TOKEN)
            .with_env_var("HMAC_SECRET", SECRET)
            .with_env_var("READ_TOKEN", READER)
            .with_env_var("ADMIN_TOKEN", ADMIN);
    }
    let container = request.start().await.expect("starting the backend container");
    Backend { container, http: reqwest::Client::new() }
}

impl Backend {
    async fn url(&self, path: &str) -> String {
        let port = self.container.get_host_port_ipv4(8000.tcp()).await.unwrap();
        format!("http://127.0.0.1:{port}{path}")
    }

    async fn post_signed(
        &self,
        body: &[u8],
        token: &str,
        secret: &str,
        ts: i64,
    ) -> (StatusCode, Value) {
        let base = self.url("").await;
        let resp =
            harness::signed::signed_ingest(&self.http, &base, token, secret, ts, body.to_vec())
                .send()
                .await
                .unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self.read(path).await.unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    async fn read(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.http.get(self.url(path).await).bearer_auth(READER).send().await
    }
}

use harness::signed::now_secs as now;

fn seed_example() -> &'static [u8] {
    include_bytes!("../../protocol/testdata/payloads/seed_example.json")
}

fn volume() -> String {
    format!("telemetry-test-{}", uuid::Uuid::new_v4())
}

fn rows_redacted() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_redaction("[].id", "[id]");
    settings.add_redaction("[].ingested_at", "[time]");
    settings
}

#[tokio::test]
async fn the_seed_api_through_the_image() {
    let backend = start(&volume(), true).await;
    assert_eq!(
        backend.http.get(backend.url("/api/events").await).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The live feed takes the read token as every other read does, never from its URL.
    let mut ws_request =
        backend.url("/ws").await.replace("http", "ws").into_client_request().unwrap();
    let bearer = format!("Bearer {READER}").parse().unwrap();
    ws_request.headers_mut().insert("authorization", bearer);
    let mut ws = tokio_tungstenite::connect_async(ws_request).await.unwrap().0;
    // Until the server has subscribed the socket, rows may pass it by: wait for the gauge.
    for _ in 0..100 {
        let text = backend.http.get(backend.url("/metrics").await).send().await.unwrap();
        if text.text().await.unwrap().contains("telemetry_ws_clients 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = backend.post_signed(seed_example(), TOKEN, SECRET, now()).await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("ingest", body);
    let (_, rows) = backend.get("/api/events?agent_id=host-01").await;
    rows_redacted().bind(|| assert_json_snapshot!("events", rows));
    let pushed =
        tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    let pushed: Value = serde_json::from_str(pushed.to_text().unwrap()).unwrap();
    assert_eq!(pushed, rows[1]);

    let (status, err) = backend.post_signed(seed_example(), "wrong", SECRET, now()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_snapshot!("refused_bad_token", err);
    let (status, err) = backend.post_signed(seed_example(), TOKEN, "wrong", now()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_snapshot!("refused_bad_signature", err);
    let (status, err) = backend.post_signed(seed_example(), TOKEN, SECRET, now() - 3600).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("stale_timestamp")));
    let (status, err) = backend.post_signed(b"{\"agent_id\":1}", TOKEN, SECRET, now()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_json_snapshot!("refused_invalid", err);

    let resp = backend
        .http
        .post(backend.url("/api/events/clear").await)
        .header("x-api-token", ADMIN)
        .body(r#"{"agent_id":"host-01"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_json_snapshot!("cleared", resp.json::<Value>().await.unwrap());
    let (_, rows) = backend.get("/api/events").await;
    assert_eq!(rows, serde_json::json!([]));
}

#[tokio::test]
async fn data_and_the_replay_guard_survive_a_container_restart() {
    let volume = volume();
    let backend = start(&volume, true).await;
    let ts = now();
    assert_eq!(backend.post_signed(seed_example(), TOKEN, SECRET, ts).await.0, StatusCode::OK);
    backend.container.stop().await.unwrap();
    backend.container.start().await.unwrap();
    let mut rows = Value::Null;
    for _ in 0..50 {
        if let Ok(resp) = backend.read("/api/events").await {
            rows = resp.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    let (status, err) = backend.post_signed(seed_example(), TOKEN, SECRET, ts).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("replay")));
}

/// Requests reach the container from the bridge network, not loopback: the development
/// credentials must be refused there.
#[tokio::test]
async fn development_defaults_are_refused_from_outside_the_container() {
    let backend = start(&volume(), false).await;
    let (status, err) = backend
        .post_signed(seed_example(), protocol::DEV_API_TOKEN, protocol::DEV_HMAC_SECRET, now())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(err["detail"].as_str().unwrap().contains("loopback"), "{err}");
}

#[tokio::test]
async fn the_real_agent_delivers_to_the_container() {
    let backend = start(&volume(), true).await;
    let queue = tempfile::tempdir().unwrap();
    let api_url = backend.url("").await;
    let settings = agent::settings::Settings::resolve(Default::default(), |key| match key {
        "API_URL" => Some(api_url.clone()),
        "API_TOKEN" => Some(TOKEN.into()),
        "HMAC_SECRET" => Some(SECRET.into()),
        "AGENT_ID" => Some("agent-in-test".into()),
        "INTERVAL_SECONDS" => Some("1".into()),
        "QUEUE_PATH" => Some(queue.path().to_string_lossy().into_owned()),
        _ => None,
    })
    .unwrap();
    let summary = agent::startup::run(&settings, tokio::time::sleep(Duration::from_millis(3500)))
        .await
        .unwrap();
    assert!(
        summary.ticks >= 3 && summary.delivered + summary.queued == summary.ticks,
        "{summary:?}"
    );
    let (_, agents) = backend.get("/api/agents").await;
    assert_eq!(agents[0]["agent_id"], "agent-in-test");
    assert_eq!(agents[0]["online"], true);
    let (_, metrics) = backend.get("/api/events?agent_id=agent-in-test&type=metric").await;
    assert_eq!(metrics.as_array().unwrap().len() as u64, summary.delivered);
}
