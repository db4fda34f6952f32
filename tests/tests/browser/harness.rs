//! The real parts of a browser test: the backend serving the dashboard, in this process on
//! free ports, chromedriver with headless Chromium, and signed ingest.
//!
//! Every missing piece fails the test with what to install or build; nothing is skipped.

use fantoccini::{Client, ClientBuilder, Locator};
use protocol::{Event, EventKind, IngestBatch};
use serde_json::{Value, json};
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) use harness::{ADMIN, READER, TestBackend};
use harness::{SECRET, TOKEN};

pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// `target/<profile>`, found from this test binary in `target/<profile>/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf()
}

/// Where screenshots and measurements go: `target/e2e-artifacts`.
pub(crate) fn artifacts() -> PathBuf {
    let dir = profile_dir().parent().expect("target dir").join("e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("create artifacts folder");
    dir
}

fn dist() -> PathBuf {
    let dist = std::env::var_os("DASHBOARD_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().parent().expect("target dir").join("dashboard-dist"));
    assert!(
        dist.join("app_bg.wasm").is_file(),
        "no built dashboard in {}: run dashboard/build-web.sh (or set DASHBOARD_DIST)",
        dist.display()
    );
    dist
}

pub(crate) use harness::signed::now_secs;

pub(crate) fn rfc3339(unix_s: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The backend with the built dashboard on its second listener (and the test credentials),
/// also with `env`.
pub(crate) fn start_with_dashboard(env: &[(&str, &str)]) -> TestBackend {
    let dist = dist();
    let mut all = vec![("DASHBOARD_DIST", dist.to_str().expect("a UTF-8 path"))];
    all.extend_from_slice(env);
    TestBackend::start_with(&all)
}

/// The dashboard's origin, e.g. `http://127.0.0.1:41234`.
pub(crate) fn site(backend: &TestBackend) -> String {
    backend.dashboard.as_ref().expect("started with the dashboard").url("")
}

/// chromedriver with headless Chromium, killed on drop.
pub(crate) struct Browser {
    pub client: Client,
    driver: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    pub(crate) async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver not found: apt-get install chromium chromium-driver");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < WAIT, "chromedriver did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--window-size=1280,900",
            ]},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("connect to chromedriver");
        Self { client, driver }
    }

    pub(crate) async fn wait_css(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
    }

    /// Polls `check` until it returns `Some`, failing with `what` after [`WAIT`].
    pub(crate) async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.text().await.unwrap_or_default());
        }
        out
    }

    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Console messages at error level, except those matching an `expected` pattern.
    pub(crate) async fn console_errors(&self, expected: &[&str]) -> Vec<String> {
        let log = self.client.issue_cmd(BrowserLog).await.expect("read the browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .filter(|m| !expected.iter().any(|p| m.contains(p)))
            .collect()
    }

    /// Ends the browser session; dropping then stops chromedriver.
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Also when a test fails before `close`: a chromedriver left running outlives the test run.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's (non-W3C) endpoint for the browser console.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// A batch with machine figures and two processes, timed `at` (unix seconds).
pub(crate) fn batch(agent: &str, at: i64, cpu: f64) -> IngestBatch {
    let gib = 1u64 << 30;
    IngestBatch {
        agent_id: agent.to_owned(),
        ts: rfc3339(at),
        platform: "windows".to_owned(),
        batch_id: Some(uuid::Uuid::new_v4().to_string()),
        events: vec![
            Event {
                cpu: Some(cpu),
                mem_free: Some(5 * gib),
                mem_total: Some(16 * gib),
                disk_free: Some(120 * gib),
                disk_total: Some(475 * gib),
                net_rx_bps: Some(250_000.0 * cpu),
                net_tx_bps: Some(40_000.0),
                uptime_s: Some(86_400),
                ..Event::empty(EventKind::Metric)
            },
            Event::process(4242, "sqlservr.exe", cpu / 2.0, 2 * gib),
            Event::process(77, "chrome.exe", cpu / 4.0, gib / 2),
        ],
        agent: None,
        drives: None,
        host: None,
        notices: None,
        services: None,
    }
}

/// Signs and posts a batch straight to the backend, as an agent does.
pub(crate) async fn ingest(http: &reqwest::Client, backend: &str, batch: &IngestBatch) -> Value {
    let body = serde_json::to_vec(batch).unwrap();
    let response = harness::signed::signed_ingest(http, backend, TOKEN, SECRET, now_secs(), body)
        .send()
        .await
        .expect("post batch");
    assert!(response.status().is_success(), "ingest refused: {}", response.status());
    response.json().await.unwrap()
}
