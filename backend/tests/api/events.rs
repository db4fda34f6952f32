use crate::helpers::*;
use insta::assert_json_snapshot;
use reqwest::StatusCode;
use serde_json::Value;

fn ids(rows: &Value) -> Vec<i64> {
    rows.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn newest_first_with_limits_filters_and_gapless_paging() {
    let server = TestBackend::start();
    // 60 batches of 11 events, many within the same second, from two agents.
    for i in 0..60 {
        let agent = if i % 2 == 0 { "even" } else { "odd" };
        assert_eq!(server.ingest(&batch(agent, 10)).await.0, StatusCode::OK);
    }
    let (_, rows) = server.get("/api/events").await;
    let got = ids(&rows);
    assert_eq!(got.len(), 50, "default limit");
    assert!(got.windows(2).all(|w| w[0] > w[1]), "strictly newest first: {got:?}");

    let (status, all) = server.get("/api/events?limit=500").await;
    assert_eq!((status, ids(&all).len()), (StatusCode::OK, 500));
    let long_type = format!("type={}", "t".repeat(33));
    for bad in
        ["limit=501", "limit=0", "limit=-1", "limit=ten", &long_type, "before_id=x", "color=red"]
    {
        let (status, err) = server.get(&format!("/api/events?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {err}");
        assert_eq!(err["code"], "invalid");
    }

    // Paging with before_id visits every row exactly once, even while new rows arrive.
    let mut seen = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/events?agent_id=even&limit=37&before_id={b}"),
            None => "/api/events?agent_id=even&limit=37".to_string(),
        };
        let (_, page) = server.get(&path).await;
        let page_ids = ids(&page);
        if page_ids.is_empty() {
            break;
        }
        assert!(page.as_array().unwrap().iter().all(|r| r["agent_id"] == "even"));
        server.ingest(&batch("even", 1)).await;
        before = page_ids.last().copied();
        seen.extend(page_ids);
    }
    assert_eq!(seen.len(), 30 * 11);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));

    let (_, procs) = server.get("/api/events?type=proc&agent_id=odd&limit=500").await;
    assert_eq!(ids(&procs).len(), 300);
    assert!(
        procs
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["event_type"] == "proc" && r["agent_id"] == "odd")
    );
    // An empty agent_id (a form with nothing chosen) means no filter.
    let (status, rows) = server.get("/api/events?agent_id=&limit=5").await;
    assert_eq!((status, ids(&rows).len()), (StatusCode::OK, 5));
}

#[tokio::test]
async fn clear_needs_the_admin_token_and_clears_one_agent_or_all() {
    let server = TestBackend::start();
    for agent in ["a", "a", "b"] {
        server.ingest(&batch(agent, 1)).await;
    }
    let (status, err) = server.clear(None, r#"{"agent_id":"a"}"#).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_json_snapshot!("clear_without_token", err);
    assert_eq!(server.clear(Some("wrong"), "{}").await.0, StatusCode::FORBIDDEN);
    // The token every agent sends in clear text no longer clears.
    assert_eq!(server.clear(Some(TOKEN), "{}").await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), 6);

    let (status, body) = server.clear(Some(ADMIN), r#"{"agent_id":"a"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("clear_one_agent", body);
    let (_, agents) = server.get("/api/agents").await;
    assert_eq!(agents.as_array().unwrap().len(), 1);

    let (status, err) = server.clear(Some(ADMIN), r#"{"agent":"b"}"#).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")));
    let (_, body) = server.clear(Some(ADMIN), "").await;
    assert_eq!(body["cleared"], 2);
    server.ingest(&batch("c", 0)).await;
    let (_, body) = server.clear(Some(ADMIN), "{}").await;
    assert_eq!(body["cleared"], 1);
    server.ingest(&batch("c", 0)).await;
    let (_, body) = server.clear(Some(ADMIN), r#"{"agent_id": null}"#).await;
    assert_eq!(body["cleared"], 1);
    // Ids are never reused after a clear, so a client's "newest id" stays meaningful.
    server.ingest(&batch("c", 0)).await;
    let (_, rows) = server.get("/api/events").await;
    assert!(rows[0]["id"].as_i64().unwrap() > 8);
}

#[tokio::test]
async fn an_agent_id_no_agent_could_send_is_refused_in_reads_and_clears() {
    let server = TestBackend::start();
    let long = "x".repeat(129);
    for path in [
        "/api/events?agent_id=%00x".to_owned(),
        format!("/api/events?agent_id={long}"),
        "/api/agents/%01/series".to_owned(),
        format!("/api/agents/{long}/processes"),
    ] {
        let (status, err) = server.get(&path).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")),
            "{path}"
        );
    }
    let body = serde_json::json!({ "agent_id": long }).to_string();
    let (status, err) = server.clear(Some(ADMIN), &body).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")));
}
