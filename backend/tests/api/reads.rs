use crate::helpers::*;
use insta::assert_json_snapshot;
use protocol::Event;
use reqwest::StatusCode;

fn at(agent: &str, unix: i64, cpu: f64, procs: &[(&str, f64)]) -> protocol::IngestBatch {
    let mut b = batch(agent, 0);
    b.ts = time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    b.events[0].cpu = Some(cpu);
    for (i, (name, cpu)) in procs.iter().enumerate() {
        b.events.push(Event::process(10 + i as u32, *name, *cpu, 1 << 20));
    }
    b
}

#[tokio::test]
async fn agents_list_their_latest_figures_and_interval() {
    let server = TestBackend::start();
    let now = now_secs();
    for (i, cpu) in [0.1, 0.2, 0.3].iter().enumerate() {
        server.ingest(&at("pc-1", now - 10 + 5 * i as i64, *cpu, &[])).await;
    }
    // An old queued batch arriving late does not overwrite the newest figures.
    server.ingest(&at("pc-1", now - 600, 0.9, &[])).await;
    let (status, agents) = server.get("/api/agents").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(agents[0]["cpu"], 0.3);
    assert_eq!(agents[0]["interval_s"], 5.0);
    assert_eq!(agents[0]["online"], true);
    assert_json_snapshot!("agents", agents, {
        "[].first_seen" => "[time]", "[].last_seen" => "[time]",
        "[].last_seen_ago_s" => "[seconds]", "[].metric_ts" => "[time]",
    });
    // One agent's row alone, for a page that keeps it current.
    server.ingest(&at("pc-2", now, 0.5, &[])).await;
    assert_eq!(server.get("/api/agents").await.1.as_array().unwrap().len(), 2);
    let (status, one) = server.get("/api/agents?agent_id=pc-2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((one.as_array().unwrap().len(), &one[0]["cpu"]), (1, &serde_json::json!(0.5)));
    assert_eq!(server.get("/api/agents?agent_id=nobody").await.1, serde_json::json!([]));
    assert_eq!(server.get("/api/agents?agent_id=").await.1.as_array().unwrap().len(), 2);
    let (status, err) = server.get("/api/agents?agent_id=%20pc").await;
    assert_eq!((status, &err["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &"invalid".into()));
}

#[tokio::test]
async fn series_are_bucketed_and_bounded() {
    let server = TestBackend::start();
    let base = 1_762_948_800; // 2025-11-12T12:00:00Z
    for i in 0..120 {
        server.ingest(&at("pc-s", base + i * 5, (i % 10) as f64 / 10.0, &[])).await;
    }
    let (status, s) =
        server.get(&format!("/api/agents/pc-s/series?from={base}&to={}&step=60", base + 600)).await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("series", s);
    // A week asked at one-second steps is cut to at most 2000 buckets.
    let (_, week) = server
        .get(&format!("/api/agents/pc-s/series?from={}&to={}&step=1", base - 604_800, base + 600))
        .await;
    assert!(week["step"].as_i64().unwrap() >= 303);
    let (status, err) = server.get("/api/agents/nobody/series").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_json_snapshot!("series_unknown_agent", err);
    let (status, _) = server.get("/api/agents/pc-s/series?from=10&to=5").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn processes_latest_and_history() {
    let server = TestBackend::start();
    let base = 1_762_948_800;
    server.ingest(&at("pc-p", base, 0.5, &[("old.exe", 0.4)])).await;
    server.ingest(&at("pc-p", base + 5, 0.5, &[("chrome.exe", 0.2), ("code.exe", 0.3)])).await;
    server.ingest(&at("pc-p", base + 10, 0.5, &[])).await;
    let (status, latest) = server.get("/api/agents/pc-p/processes").await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("processes_latest", latest, {
        ".processes[].id" => "[id]", ".processes[].ingested_at" => "[time]",
    });
    let (_, history) = server
        .get(&format!("/api/agents/pc-p/processes?name=chrome.exe&from={base}&to={}", base + 60))
        .await;
    assert_json_snapshot!("process_history", history);
}

/// The agent's own version and uptime: served on the fleet, kept across a restart; the backend
/// says on ingest answers and `/healthz` that it takes them.
#[tokio::test]
async fn the_agents_version_is_served_and_kept_and_the_level_is_said() {
    let mut server = TestBackend::start();
    let mut b = batch("pc-v", 0);
    b.agent = Some(protocol::AgentInfo { version: "9.9.9".into(), uptime_s: 42 });
    let drive = protocol::Drive {
        mount: "/data".into(),
        free: 5,
        total: 10,
        read_bps: Some(0.0),
        write_bps: Some(512.0),
    };
    b.drives = Some(vec![drive.clone()]);
    let host = protocol::Host {
        cores: vec![0.25, 1.0],
        swap_used: Some(1),
        swap_total: Some(2),
        commit_used: Some(3),
        commit_limit: Some(4),
    };
    b.host = Some(host.clone());
    let sent = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(sent.headers()[protocol::HEADER_INGEST_LEVEL], "4");
    assert_eq!(server.ingest(&b).await.0, reqwest::StatusCode::OK);
    server.restart();
    let (_, agents) = server.get("/api/agents").await;
    assert_eq!(
        (agents[0]["agent_version"].as_str(), agents[0]["agent_uptime_s"].as_u64()),
        (Some("9.9.9"), Some(42))
    );
    let drives: Vec<protocol::Drive> = serde_json::from_value(agents[0]["drives"].clone()).unwrap();
    assert_eq!(drives, [drive]);
    let served: protocol::Host = serde_json::from_value(agents[0]["host"].clone()).unwrap();
    assert_eq!(served, host);
    b.agent = Some(protocol::AgentInfo { version: " padded".into(), uptime_s: 1 });
    b.batch_id = None;
    let (status, refusal) = server.ingest(&b).await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{refusal}");
}

/// Services and notices: stored with the batch, kept across a restart, filtered and paged.
#[tokio::test]
async fn services_and_notices_are_served_filtered_and_checked() {
    use protocol::{Notice, NoticeKind, NoticeLevel, Service, ServiceState};
    let mut server = TestBackend::start();
    let mut b = batch("pc-s", 0);
    let service = |name: &str, state| Service {
        name: name.into(),
        display_name: None,
        state,
        start: Some(protocol::StartMode::Auto),
    };
    b.services = Some(vec![
        service("Spooler", ServiceState::Stopped),
        service("W32Time", ServiceState::Running),
    ]);
    let notice = |kind, level, code: Option<u32>, message: &str| Notice {
        ts: b.ts.clone(),
        kind,
        level,
        source: "System/Service Control Manager".into(),
        code,
        message: message.into(),
    };
    b.notices = Some(vec![
        notice(NoticeKind::Log, NoticeLevel::Error, Some(7034), "The Print Spooler terminated."),
        notice(NoticeKind::Service, NoticeLevel::Warning, None, "stopped (was running)"),
    ]);
    assert_eq!(server.ingest(&b).await.0, StatusCode::OK);
    server.restart();
    let (status, services) = server.get("/api/agents/pc-s/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("services", services, { ".ts" => "[ts]" });
    let (_, notices) = server.get("/api/agents/pc-s/notices").await;
    assert_json_snapshot!("notices", notices, { "[].id" => "[id]", "[].ts" => "[ts]" });
    let (_, errors) = server.get("/api/agents/pc-s/notices?level=error&kind=log").await;
    assert_eq!(errors.as_array().map(Vec::len), Some(1));
    let first = notices[0]["id"].as_i64().unwrap();
    let (_, page) = server.get(&format!("/api/agents/pc-s/notices?before_id={first}")).await;
    assert_eq!(page.as_array().map(Vec::len), Some(1));

    let (status, _) = server.get("/api/agents/nobody/services").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/api/agents/nobody/notices").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["level=fatal", "kind=x", "limit=0", "limit=501", "since=1"] {
        let (status, body) = server.get(&format!("/api/agents/pc-s/notices?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    // A message with a control character is refused with the reason, not stored.
    let mut bad = batch("pc-s", 0);
    bad.notices = Some(vec![notice(NoticeKind::Log, NoticeLevel::Error, None, "bell\u{7}")]);
    let (status, refusal) = server.ingest(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refusal["detail"].as_str().is_some_and(|d| d.starts_with("notices:")), "{refusal}");
}
