//! What the API suite adds to the shared harness: its batches and fixtures, and the binary
//! for the tests about the process itself.

pub(crate) use harness::api::{post_batch, split};
pub(crate) use harness::process::BackendProcess;
pub(crate) use harness::signed::now_secs;
pub(crate) use harness::{ADMIN, SECRET, TOKEN, TestBackend};
use protocol::{Event, EventKind, IngestBatch};
use std::path::Path;

/// The backend binary of this build on `db` (with more variables by the binary's names), for
/// SIGKILL and SIGTERM, and for replicas that are processes of their own.
pub(crate) fn backend_process(db: &Path, env: &[(&str, &str)]) -> BackendProcess {
    BackendProcess::start_on(Path::new(env!("CARGO_BIN_EXE_backend")), db, env)
}

/// The backend binary with only `env` and a database of its own, which must refuse to start:
/// its exit status and what it wrote to stderr. One that starts anyway would serve for ever, so
/// it fails the test after 20 s instead.
pub(crate) fn refused_start(
    env: &[(&str, &std::ffi::OsStr)],
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let mut backend = std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
        .env_clear()
        .env("DB_PATH", dir.path().join("t.db"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = backend.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = backend.kill();
            panic!("the backend started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    backend.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stderr)
}

pub(crate) fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// A realistic batch: one metric reading and `procs` processes, with a fresh batch id.
pub(crate) fn batch(agent_id: &str, procs: u32) -> IngestBatch {
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
        agent: None,
        drives: None,
        host: None,
        notices: None,
        services: None,
    }
}

pub(crate) fn seed_example() -> &'static str {
    include_str!("../../../protocol/testdata/payloads/seed_example.json")
}
