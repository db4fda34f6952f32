use crate::helpers::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// SIGKILL under load, several times on one database: every acknowledged batch and all its
/// events survive, and SQLite's integrity check passes.
#[tokio::test]
async fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    // agent -> batches acknowledged; each agent sends one batch at a time
    let acked: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    for round in 0..4u64 {
        let server = backend_process(&db, &[]);
        let mut tasks = Vec::new();
        for t in 0..12 {
            let acked = acked.clone();
            let http = server.http.clone();
            let url = server.url("");
            tasks.push(tokio::spawn(async move {
                loop {
                    let agent = format!("dur-{round}-{t}");
                    let b = batch(&agent, 4);
                    if !post_batch(&http, &url, &b).await {
                        break;
                    }
                    *acked.lock().unwrap().entry(agent).or_default() += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + 250 * round)).await;
        server.kill();
        for t in tasks {
            t.await.unwrap();
        }
    }
    let acked = acked.lock().unwrap();
    let total: i64 = acked.values().sum();
    assert!(total > 100, "too little load to prove anything: {total}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let mut stmt = conn
        .prepare("SELECT count(*), min(count), max(count) FROM batch_log WHERE agent_id = ?1")
        .unwrap();
    for (agent, batches) in acked.iter() {
        let (stored, fewest, most): (i64, Option<i64>, Option<i64>) =
            stmt.query_row([agent], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        // The batch in flight at the kill may have been committed without its answer.
        assert!(
            stored == *batches || stored == batches + 1,
            "{agent}: {batches} batches acknowledged, {stored} stored"
        );
        assert_eq!((fewest, most), (Some(5), Some(5)), "{agent}: each batch keeps five events");
    }
    // Batches, their ids and their events are committed together: the totals agree exactly.
    let (events, batches, ids): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM batch_log),
                    (SELECT count(batch_key) FROM batch_log)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((events, ids), (5 * batches, batches));
}
