//! Starts the real `backend` binary on a free port with a temporary database.

use harness::signed::{ingest_request, signed_ingest};
use protocol::{Event, EventKind, IngestBatch};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub const TOKEN: &str = "test-token-7f3a";
pub const SECRET: &str = "test-secret-91c2";
/// What clears: agents' API token does not.
pub const ADMIN: &str = "test-admin-4d81";

pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub db_path: PathBuf,
    logs: Arc<Mutex<String>>,
    pub http: reqwest::Client,
    // Kept alive for the server's lifetime; `None` when the caller owns the folder.
    _dir: Option<tempfile::TempDir>,
}

pub use harness::signed::now_secs;

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("telemetry.db");
        let mut server = Self::start_on(&db, env);
        server._dir = Some(dir);
        server
    }

    /// Starts on an existing database file, as after a restart.
    pub fn start_on(db_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut with_credentials =
            vec![("API_TOKEN", TOKEN), ("HMAC_SECRET", SECRET), ("ADMIN_TOKEN", ADMIN)];
        with_credentials.extend_from_slice(env);
        Self::spawn(db_path, &with_credentials)
    }

    /// With API_TOKEN and HMAC_SECRET unset: the development defaults.
    pub fn start_on_without_credentials(db_path: &Path) -> Self {
        Self::spawn(db_path, &[])
    }

    fn spawn(db_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backend"));
        cmd.env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("DB_PATH", db_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn backend");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(addr.parse::<SocketAddr>().ok());
                    }
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(addr)) => addr,
            _ => panic!("backend did not start; logs:\n{}", logs.lock().unwrap()),
        };
        Self {
            child,
            addr,
            db_path: db_path.to_owned(),
            logs,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit code; the database folder is handed back to be read.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Option<tempfile::TempDir>) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        (status, self._dir.take())
    }

    /// Signs `body` with a fresh timestamp and posts it.
    pub async fn ingest_raw(&self, body: &[u8]) -> (StatusCode, Value) {
        let base = self.url("");
        let request = signed_ingest(&self.http, &base, TOKEN, SECRET, now_secs(), body.to_vec());
        split(request.send().await.unwrap()).await
    }

    pub async fn post_signed(
        &self,
        body: &[u8],
        token: &str,
        ts: &str,
        sig: &str,
    ) -> (StatusCode, Value) {
        let request = ingest_request(&self.http, &self.url(""), token, ts, sig, body.to_vec());
        split(request.send().await.unwrap()).await
    }

    pub async fn ingest(&self, batch: &IngestBatch) -> (StatusCode, Value) {
        self.ingest_raw(&serde_json::to_vec(batch).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        split(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn clear(&self, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url("/api/events/clear")).body(body.to_owned());
        if let Some(t) = token {
            req = req.header("x-api-token", t);
        }
        split(req.send().await.unwrap()).await
    }

    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
    }

    /// Counts rows straight from the SQLite file.
    pub fn count_rows(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs and posts a batch from a load task, which holds only a client and the URL; true when
/// the backend acknowledged it.
pub async fn post_batch(http: &reqwest::Client, base: &str, batch: &IngestBatch) -> bool {
    let body = serde_json::to_vec(batch).unwrap();
    let sent = signed_ingest(http, base, TOKEN, SECRET, now_secs(), body).send().await;
    matches!(sent, Ok(r) if r.status().is_success())
}

pub async fn split(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, value)
}

pub fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// A realistic batch: one metric reading and `procs` processes, with a fresh batch id.
pub fn batch(agent_id: &str, procs: u32) -> IngestBatch {
    let mut events = vec![Event {
        cpu: Some(0.42),
        mem_free: Some(4 << 30),
        mem_total: Some(16 << 30),
        disk_free: Some(100 << 30),
        disk_total: Some(500 << 30),
        net_rx_bps: Some(1200.5),
        net_tx_bps: Some(800.0),
        uptime_s: Some(3600),
        ..Event::empty(EventKind::Metric)
    }];
    for i in 0..procs {
        let (cpu, rss) = (0.01 * f64::from(i + 1), u64::from(i + 1) << 20);
        events.push(Event::process(100 + i, format!("proc-{i}.exe"), cpu, rss));
    }
    IngestBatch {
        agent_id: agent_id.into(),
        ts: rfc3339_now(),
        platform: "windows".into(),
        batch_id: Some(uuid::Uuid::now_v7().to_string()),
        events,
    }
}

pub fn seed_example() -> &'static str {
    include_str!("../../../protocol/testdata/payloads/seed_example.json")
}
