//! The real agent binary against the real backend (in this process, on real HTTP and a real
//! SQLite file): through a backend outage every tick arrives exactly once; over HTTPS it trusts
//! the private CA it is given and no other.

use harness::tls::TestCa;
use harness::{SECRET, TOKEN, TestBackend};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn queued_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".batch"))
                .count()
        })
        .unwrap_or(0)
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_arrives_exactly_once_through_a_backend_outage() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let mut backend = TestBackend::start();

    let mut agent = Command::new(env!("CARGO_BIN_EXE_agent"))
        .env_clear()
        .env("API_URL", backend.url(""))
        .env("API_TOKEN", TOKEN)
        .env("HMAC_SECRET", SECRET)
        .env("AGENT_ID", "e2e-agent")
        .env("INTERVAL_SECONDS", "1")
        .env("TOP_PROCESSES", "3")
        .env("REQUEST_TIMEOUT_SECONDS", "2")
        .env("QUEUE_PATH", &queue)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let logs = logs.clone();
        let stderr = agent.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(3500)).await;
    backend.stop();
    // Down for several ticks: the agent queues them on disk.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(queued_files(&queue) >= 3, "ticks during the outage were not queued");

    backend.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while queued_files(&queue) > 0 {
        assert!(Instant::now() < deadline, "the queue never drained after the backend came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Command::new("kill").args(["-TERM", &agent.id().to_string()]).status().unwrap();
    let status = agent.wait().unwrap();
    reader.join().unwrap();
    backend.stop();
    let logs = logs.lock().unwrap().join("\n");
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(!logs.contains(SECRET) && !logs.contains(TOKEN), "a secret reached the log:\n{logs}");
    let summary = logs.lines().find(|l| l.contains("agent stopped")).expect("a final summary");
    let (ticks, queued) = (field(summary, "ticks"), field(summary, "queued"));
    assert!(field(summary, "retries") >= 1, "{summary}");
    assert_eq!(queued as usize, queued_files(&queue));

    let conn = rusqlite::Connection::open(&backend.db_path).unwrap();
    let (metrics, distinct_ts, bad_values): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT ts),
                    sum(cpu < 0 OR cpu > 1 OR mem_free <= 0 OR mem_total < mem_free OR uptime_s <= 0)
             FROM events WHERE agent_id = 'e2e-agent' AND event_type = 'metric'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // Each tick exactly once: stored or, for a tick cut short by SIGTERM, still queued.
    assert_eq!(metrics as u64 + queued, ticks, "{summary}");
    assert_eq!(distinct_ts, metrics, "a tick was stored twice");
    assert_eq!(bad_values, 0);
    assert!(ticks >= 8, "{summary}");
    let procs: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE agent_id = 'e2e-agent' AND event_type = 'proc'
             AND proc_name <> '' AND cpu BETWEEN 0 AND 1 AND rss >= 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(procs, metrics * 3);
}

#[test]
fn bad_configuration_is_one_line_and_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_agent"))
        .env_clear()
        .env("INTERVAL_SECONDS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("agent: INTERVAL_SECONDS"), "{err}");
}

/// `agent --once` with the test credentials, queueing in `queue`, and `env`.
fn once(queue: &Path, env: &[(&str, &OsStr)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent"))
        .arg("--once")
        .env_clear()
        .env("API_TOKEN", TOKEN)
        .env("HMAC_SECRET", SECRET)
        .env("AGENT_ID", "once-agent")
        .env("QUEUE_PATH", queue)
        .env("REQUEST_TIMEOUT_SECONDS", "2")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

const CLEAR_TEXT: &str = "travel in clear text";

#[test]
fn once_against_no_backend_keeps_the_batch_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = once(dir.path(), &[("API_URL", "http://127.0.0.1:9".as_ref())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(queued_files(dir.path()), 1);
    assert!(!err.contains(CLEAR_TEXT), "loopback is not the network: {err}");
}

/// An http:// URL to another machine (0.0.0.0 is not loopback by its name, yet reaches nothing
/// beyond this one) gets one warning at the start.
#[test]
fn http_to_another_machine_is_warned_about_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = once(dir.path(), &[("API_URL", "http://0.0.0.0:9".as_ref())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches(CLEAR_TEXT).count(), 1, "{err}");
    assert!(err.contains("use https://") && err.contains("CA_CERT"), "{err}");
}

/// The backend serves a certificate of a private CA: an agent given that CA in `CA_CERT` (in a
/// file of two, as a bundle holds) delivers; an agent given another CA refuses the backend,
/// keeps its batch and says it is the certificate.
#[test]
fn over_https_the_agent_trusts_the_ca_it_is_given_and_no_other() {
    let (ca, other) = (TestCa::new("fleet CA"), TestCa::new("another CA"));
    let backend = TestBackend::start_tls(&ca.cert, &ca.issue(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, other.pem() + &ca.pem()).unwrap();
    let url = backend.url("");
    assert!(url.starts_with("https://"), "{url}");

    let wrong = dir.path().join("wrong");
    let out = once(&wrong, &[("API_URL", url.as_ref()), ("CA_CERT", other.cert.as_ref())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(queued_files(&wrong), 1, "the batch stays queued");
    assert!(err.contains("UnknownIssuer") && err.contains("CA_CERT must name"), "{err}");
    assert_eq!(backend.count_rows("SELECT count(*) FROM events"), 0);

    let right = dir.path().join("right");
    let out = once(&right, &[("API_URL", url.as_ref()), ("CA_CERT", bundle.as_ref())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(queued_files(&right), 0);
    assert!(!err.contains(CLEAR_TEXT), "{err}");
    let metrics =
        "SELECT count(*) FROM events WHERE agent_id = 'once-agent' AND event_type = 'metric'";
    assert_eq!(backend.count_rows(metrics), 1);
}

#[test]
fn an_unusable_ca_file_is_one_line_and_exit_code_2() {
    let ca = TestCa::new("fleet CA");
    let key_only = ca.issue().key;
    for (file, says) in [
        (ca.cert.with_file_name("absent.pem"), "cannot be read"),
        (key_only, "holds no certificate"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = once(dir.path(), &[("CA_CERT", file.as_ref())]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("agent: CA_CERT") && err.contains(says), "{err}");
    }
}
