//! The real backend binary on a free port, and the real `loadtest` binary against it.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const TOKEN: &str = "load-token-5d1e";
pub const SECRET: &str = "load-secret-a8b4";

/// The backend binary of the same build as this test.
///
/// Cargo sets `CARGO_BIN_EXE_<name>` only for binaries of the package under test, and a
/// dev-dependency on `backend` would build its library, not its binary. So the binary is taken
/// from where cargo puts it for this profile, `<target>/<profile>/backend`, next to the `deps`
/// folder holding this test. `cargo nextest run --workspace` builds it (the backend's own tests
/// need it), and `ci/test.sh` runs `cargo build -p backend` before this crate's tests, so it is
/// current there; `BACKEND_BIN` may name another one.
pub fn backend_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("BACKEND_BIN") {
        return path.into();
    }
    let test_exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir =
        test_exe.parent().and_then(|deps| deps.parent()).expect("<target>/<profile>/deps");
    let bin = profile_dir.join(format!("backend{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no backend binary at {}: run `cargo build -p backend` first (or set BACKEND_BIN)",
        bin.display()
    );
    bin
}

pub struct Backend {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Backend {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(backend_bin())
            .env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("DB_PATH", dir.path().join("telemetry.db"))
            .env("API_TOKEN", TOKEN)
            .env("HMAC_SECRET", SECRET)
            .env("RUST_LOG", "warn,backend=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn backend");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(addr.parse::<SocketAddr>().ok());
                    }
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .expect("backend did not say where it listens");
        Self { child, addr, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One sample from `/metrics`, such as `telemetry_batches_total{result="stored"}`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = http_get(self.addr, "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain GET without a client library: these tests only read small text answers.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// `loadtest` with the test credentials and `args`.
pub fn loadtest(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    cmd.env_remove("API_URL")
        .env("API_TOKEN", TOKEN)
        .env("HMAC_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .args(["--url", url, "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The exit code and the JSON summary on the last line of stdout.
pub fn finish(output: Output) -> (i32, Value) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let summary = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "no JSON summary on the last line; stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), summary)
}

pub fn run(url: &str, args: &[&str]) -> (i32, Value) {
    finish(loadtest(url, args).output().unwrap())
}

pub fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}
