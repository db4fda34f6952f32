//! The PostgreSQL server tests create their databases on: `TEST_DATABASE_URL` when it is set
//! (`./ci/test.sh` sets it), otherwise a throwaway server of this test process's own, started
//! with `ci/postgres.sh` from Debian's binaries and stopped when the process exits, so that a
//! plain `cargo test` on a fresh clone works too.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

const INSTALL_HINT: &str = "these tests need PostgreSQL: set TEST_DATABASE_URL to a postgres:// \
     URL of a server where they may create databases, or install Debian's server binaries \
     (apt-get install postgresql) and they start one themselves";

/// Compiled in, so a test binary does not depend on where the sources are.
const SCRIPT: &str = include_str!("../../ci/postgres.sh");

/// A `postgres://` URL of a server where the caller may create databases.
pub fn server_url() -> String {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return url;
    }
    static STARTED: OnceLock<Result<String, String>> = OnceLock::new();
    match STARTED.get_or_init(start) {
        Ok(url) => url.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn start() -> Result<String, String> {
    let out = Command::new("bash")
        .args(["-c", SCRIPT, "postgres.sh", "start"])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{INSTALL_HINT} (running ci/postgres.sh: {e})"))?;
    if !out.status.success() {
        return Err(format!("{INSTALL_HINT}\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    // `export TEST_DATABASE_URL=... PG_TEST_DIR=...`
    let line = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .map(str::to_owned)
            .ok_or_else(|| format!("ci/postgres.sh printed no {key}: {line}"))
    };
    let (url, dir) = (value("TEST_DATABASE_URL=")?, value("PG_TEST_DIR=")?);
    // Stops the server once this process is gone, however it ends.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         PG_TEST_DIR={dir} bash -c \"$0\" postgres.sh stop",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &watchdog, SCRIPT])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;
    Ok(url)
}
