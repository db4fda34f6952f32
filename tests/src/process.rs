//! The backend binary as a child process, for the tests about the process itself: what a
//! SIGKILL leaves on disk, how SIGTERM ends it. Everything else runs the backend in process
//! ([`crate::backend`]), which starts faster and shows its logs to the test directly.

use crate::api::Api;
use crate::backend::{count_rows, credentials};
use crate::logs::Logs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `backend` binary, killed when dropped.
#[derive(Debug)]
pub struct BackendProcess {
    child: Child,
    api: Api,
    /// The SQLite file it serves.
    pub db_path: PathBuf,
    logs: Logs,
}

impl BackendProcess {
    /// Runs `bin` (a backend's tests have it as `env!("CARGO_BIN_EXE_backend")`) on `db_path`
    /// with the test credentials and `env`, in an otherwise empty environment.
    pub fn start_on(bin: &Path, db_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("DB_PATH", db_path)
            .env("RUST_LOG", "info")
            .envs(credentials())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let logs = Logs::default();
        let (tx, rx) = mpsc::channel();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for stream in streams {
            let (mut logs, tx) = (logs.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(addr.parse::<SocketAddr>().ok());
                    }
                    let _ = writeln!(logs, "{line}");
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(addr)) => addr,
            _ => panic!("the backend did not start; logs:\n{}", logs.text()),
        };
        Self { child, api: Api::new(addr), db_path: db_path.to_owned(), logs }
    }

    /// What it has printed so far.
    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// Counts rows straight from its SQLite file.
    pub fn count_rows(&self, sql: &str) -> i64 {
        count_rows(&self.db_path, sql)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.child.wait().expect("wait for the backend")
    }
}

impl Deref for BackendProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs.show_if_failing();
    }
}
