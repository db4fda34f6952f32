//! The real `loadtest` binary against the backend of the shared harness.

use harness::{SECRET, TOKEN};
use serde_json::Value;
use std::process::{Command, Output, Stdio};

/// `loadtest` with the test credentials and `args`.
pub(crate) fn loadtest(url: &str, args: &[&str]) -> Command {
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
pub(crate) fn finish(output: Output) -> (i32, Value) {
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

pub(crate) fn run(url: &str, args: &[&str]) -> (i32, Value) {
    finish(loadtest(url, args).output().unwrap())
}

pub(crate) fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}
