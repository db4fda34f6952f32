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
    // batch_id -> events acknowledged
    let acked: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    for round in 0..4u64 {
        let server = backend_process(&db);
        let mut tasks = Vec::new();
        for t in 0..12 {
            let acked = acked.clone();
            let http = server.http.clone();
            let url = server.url("");
            tasks.push(tokio::spawn(async move {
                loop {
                    let b = batch(&format!("dur-{round}-{t}"), 4);
                    if !post_batch(&http, &url, &b).await {
                        break;
                    }
                    acked.lock().unwrap().insert(b.batch_id.unwrap(), 5);
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
    assert!(acked.len() > 100, "too little load to prove anything: {}", acked.len());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let mut stmt = conn.prepare("SELECT stored FROM batches WHERE batch_id = ?1").unwrap();
    for (batch_id, events) in acked.iter() {
        let stored: i64 = stmt
            .query_row([batch_id], |r| r.get(0))
            .unwrap_or_else(|_| panic!("acknowledged batch {batch_id} is missing"));
        assert_eq!(stored, *events);
    }
    // Batches and events are committed together: the totals agree exactly.
    let (events, in_batches): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT sum(stored) FROM batches)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(events, in_batches);
}
