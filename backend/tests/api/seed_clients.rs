//! The seed's own clients, unchanged: every request shape its API accepted is stored and read
//! back the same over REST and the live feed, and a figure left out stays a gap.

use crate::helpers::*;
use crate::live::{connect, next_json, wait_for_clients};
use insta::assert_json_snapshot;
use reqwest::StatusCode;
use serde_json::Value;

macro_rules! fixtures {
    ($($name:literal),*) => {
        &[$(($name, include_str!(concat!("../../../protocol/testdata/payloads/", $name, ".json")))),*]
    };
}

/// Compiled in, so the test binary does not depend on where the sources are.
const FIXTURES: &[(&str, &str)] = fixtures!(
    "seed_proc_without_rss",
    "seed_metric_without_mem_free",
    "seed_upper_case_type",
    "seed_unknown_type",
    "seed_dotnet_timestamp"
);

fn fixture(name: &str) -> String {
    FIXTURES.iter().find(|(n, _)| *n == name).expect("a known fixture").1.to_owned()
}

#[tokio::test]
async fn every_seed_shape_is_stored_and_read_back_over_rest_and_the_live_feed() {
    let server = TestBackend::start();
    let mut ws = connect(&server, "").await;
    wait_for_clients(&server, 1.0).await;
    for (name, body) in FIXTURES {
        let sent: Value = serde_json::from_str(body).unwrap();
        let n = sent["events"].as_array().unwrap().len();
        let (status, answer) = server.ingest_raw(body.as_bytes()).await;
        assert_eq!((status, answer["stored"].as_u64()), (StatusCode::OK, Some(n as u64)), "{name}");

        let agent = sent["agent_id"].as_str().unwrap();
        let (status, rows) = server.get(&format!("/api/events?agent_id={agent}")).await;
        assert_eq!(status, StatusCode::OK);
        let mut pushed: Vec<Value> = Vec::new();
        for _ in 0..n {
            pushed.push(next_json(&mut ws).await);
        }
        pushed.reverse();
        assert_eq!(Value::Array(pushed), rows, "{name}: the live feed shows the stored rows");
        insta::with_settings!({ snapshot_suffix => *name }, {
            assert_json_snapshot!("seed_shape", rows, {
                "[].id" => "[id]",
                "[].ingested_at" => "[time]",
            });
        });
    }
    // The type filter takes any stored type, in any letter case.
    let (_, other) = server.get("/api/events?type=HeartBeat").await;
    let types: Vec<&str> =
        other.as_array().unwrap().iter().map(|r| r["agent_id"].as_str().unwrap()).collect();
    assert_eq!(types, ["emitter-004"]);
    let (_, metrics) = server.get("/api/events?type=metric").await;
    assert_eq!(metrics.as_array().unwrap().len(), 3);
    assert_eq!(server.count_rows("SELECT count(*) FROM events WHERE event_type = 'gpu'"), 1);
}

#[tokio::test]
async fn partial_figures_show_as_gaps_in_agents_series_and_processes() {
    let server = TestBackend::start();
    for name in ["seed_proc_without_rss", "seed_metric_without_mem_free", "seed_upper_case_type"] {
        assert_eq!(server.ingest_raw(fixture(name).as_bytes()).await.0, StatusCode::OK);
    }
    let (_, agents) = server.get("/api/agents").await;
    let agent =
        |id: &str| agents.as_array().unwrap().iter().find(|a| a["agent_id"] == id).unwrap().clone();
    // No metric at all: no figures, not zeros.
    let procs_only = agent("emitter-001");
    assert_eq!(
        (procs_only["cpu"].clone(), procs_only["mem_free"].clone()),
        (Value::Null, Value::Null)
    );
    let no_mem = agent("emitter-002");
    assert_eq!(no_mem["cpu"], 0.41);
    assert_eq!(no_mem["mem_free"], Value::Null);
    assert_eq!(agent("emitter-003")["platform"], "windows");

    let range = "from=2025-11-12T11:00:00Z&to=2025-11-12T13:00:00Z&step=60";
    let (status, series) = server.get(&format!("/api/agents/emitter-002/series?{range}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(series["cpu_avg"], serde_json::json!([0.41]));
    assert_eq!(series["mem_used"], serde_json::json!([null]));

    let (_, latest) = server.get("/api/agents/emitter-001/processes").await;
    let rss: Vec<&Value> =
        latest["processes"].as_array().unwrap().iter().map(|p| &p["rss"]).collect();
    assert_eq!(rss, [&Value::Null, &Value::Null]);
    let path = format!("/api/agents/emitter-001/processes?name=chrome.exe&{range}");
    let (status, history) = server.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["cpu_avg"], serde_json::json!([0.12]));
    assert_eq!(history["rss_avg"], serde_json::json!([null]));
    // An upper-case type is a metric like any other and feeds the agent's figures.
    let upper = agent("emitter-003");
    assert_eq!((upper["cpu"].clone(), upper["mem_free"].clone()), (0.25.into(), 268435456.into()));
}
