use crate::helpers::{finish, loadtest, num, run};
use harness::TestBackend;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

const STORED: &str = "telemetry_batches_total{result=\"stored\"}";

fn within_10_percent(value: f64, target: f64) -> bool {
    (value - target).abs() <= target * 0.10
}

#[test]
fn the_rate_is_held_and_every_acknowledged_batch_is_stored_once() {
    let backend = TestBackend::start();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let args = ["--rate", "200", "--duration", "5", "--agents", "20", "--verify", "--report-file"];
    let mut args = args.to_vec();
    args.push(report.to_str().unwrap());
    let (code, s) = run(&backend.url(""), &args);
    assert_eq!(code, 0, "{s}");
    let html = std::fs::read_to_string(&report).expect("goose wrote its report");
    assert!(html.contains("<html") && html.contains("ingest"), "{html}");
    assert_eq!(num(&s, "sent"), 1000.0, "{s}");
    assert!(within_10_percent(num(&s, "achieved_rps"), 200.0), "{s}");
    assert!(within_10_percent(num(&s, "wall_s"), 5.0), "{s}");
    assert_eq!((num(&s, "acked"), num(&s, "errors")), (1000.0, 0.0), "{s}");
    assert!(num(&s, "p50_ms") > 0.0 && num(&s, "p99_ms") >= num(&s, "p50_ms"), "{s}");
    assert_eq!(s["verify"]["ok"], true, "{s}");
    assert_eq!(s["verify"]["stored_batches"], 1000, "{s}");
    // The backend's own counters agree: 1000 batches of 1 metric and 5 processes.
    assert_eq!(backend.metric(STORED), 1000.0);
    assert_eq!(backend.metric("telemetry_events_stored_total"), 6000.0);
}

#[test]
fn hostile_traffic_is_all_refused_with_its_code_and_none_is_stored() {
    let backend = TestBackend::start();
    let (code, s) =
        run(&backend.url(""), &["--rate", "150", "--duration", "4", "--attack", "0.4", "--verify"]);
    assert_eq!(code, 0, "{s}");
    let attacks = num(&s, "attacks_sent");
    assert!(attacks > 150.0, "{s}");
    assert_eq!(num(&s, "refused_attacks"), attacks, "{s}");
    assert_eq!(num(&s, "errors"), 0.0, "{s}");
    assert_eq!(num(&s, "acked") + attacks, num(&s, "sent"), "{s}");
    assert_eq!(s["verify"]["ok"], true, "{s}");
    assert_eq!(s["verify"]["hostile_stored"], 0, "{s}");
    // Every kind of attack reached the backend and was refused for its own reason.
    let mut refused = 0.0;
    for reason in ["replay", "bad_signature", "stale_timestamp", "bad_token"] {
        let n = backend.metric(&format!("telemetry_requests_refused_total{{reason=\"{reason}\"}}"));
        assert!(n > 10.0, "{reason}: {n}");
        refused += n;
    }
    assert_eq!(refused, attacks);
    assert_eq!(backend.metric(STORED), num(&s, "acked"));
}

#[test]
fn bursts_add_their_rate_on_top() {
    let backend = TestBackend::start();
    // 50/s throughout plus 400/s in the last second of every two: 1000 requests in 4 s.
    let args = ["--rate", "50", "--burst", "400x1", "--every", "2", "--duration", "4"];
    let (code, s) = run(&backend.url(""), &args);
    assert_eq!(code, 0, "{s}");
    assert_eq!(num(&s, "sent"), 1000.0, "{s}");
    assert_eq!(num(&s, "target_rps"), 250.0, "{s}");
    assert!(within_10_percent(num(&s, "achieved_rps"), 250.0), "{s}");
    assert_eq!(backend.metric(STORED), 1000.0);
}

#[test]
fn a_backend_killed_mid_run_shows_up_as_errors_and_a_failed_exit() {
    let mut backend = TestBackend::start();
    let args = ["--rate", "200", "--duration", "5", "--timeout", "2", "--verify"];
    let child = loadtest(&backend.url(""), &args).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    backend.cut_off();
    let (code, s) = finish(child.wait_with_output().unwrap());
    assert_eq!(code, 1, "{s}");
    let (sent, acked, errors) = (num(&s, "sent"), num(&s, "acked"), num(&s, "errors"));
    // The clock kept going: every request was still sent, and each one that had no answer
    // is an error.
    assert_eq!(sent, 1000.0, "{s}");
    assert!(acked > 200.0 && errors > 200.0, "{s}");
    assert_eq!(acked + errors, sent, "{s}");
    assert!(s["errors_by_reason"]["connection failed"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    assert!(num(&s, "achieved_rps") < 160.0, "answers stopped, so must the achieved rate: {s}");
    // Nothing is left to read back from, and the summary says so instead of going missing.
    assert!(s["verify_error"].as_str().is_some_and(|e| e.contains("/api/events")), "{s}");
}

#[test]
fn a_backend_that_does_not_answer_is_not_hidden_behind_a_lower_rate() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    let args = ["--rate", "20", "--duration", "1", "--users", "2", "--timeout", "0.5"];
    let (code, s) = run(&url, &args);
    assert_eq!(code, 1, "{s}");
    assert_eq!(s["rate_held"], false, "{s}");
    assert_eq!(num(&s, "achieved_rps"), 0.0, "{s}");
    assert_eq!(num(&s, "errors"), num(&s, "sent"), "{s}");
    assert!(s["errors_by_reason"]["timeout"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    assert!(num(&s, "offered_rps") < 10.0, "{s}");
}

#[test]
fn bad_flags_get_one_line_and_exit_code_2() {
    for (args, want) in [
        (&["--rate", "abc"][..], "--rate"),
        (&["--every", "5"], "--burst"),
        (&["--burst", "10x20", "--every", "10"], "shorter than --every"),
        (&["--attack", "2"], "fraction"),
        (&["--no-such-flag"], "--no-such-flag"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadtest")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("loadtest: ") && stderr.contains(want), "{args:?}: {stderr}");
    }
}
