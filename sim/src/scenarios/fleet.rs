//! A fleet against the real backend, on real time: hundreds of fake agents with the real sender
//! and real disk queues for a fixed time, the backend stopped and started again on the same port
//! and database in the middle. The database must end with exactly what was produced.

use super::fake::Tuning;
use super::{
    HttpFleet, SECRET, TOKEN, add_summary, both, check_database, join_lives, launch_http_fleet,
};
use crate::backend::Backend;
use crate::{Config, Report, SimError};
use std::collections::HashMap;
use std::time::Duration;

pub(crate) async fn run(config: &Config) -> Result<Report, SimError> {
    let tmp = tempfile::tempdir().map_err(|e| SimError::setup("temporary folder", e))?;
    let db = tmp.path().join("telemetry.db");
    let backend = Backend::start(0, &db, TOKEN, SECRET).await?;
    let (port, url) = (backend.addr.port(), backend.url());
    let interval = Duration::from_millis(500).max(Duration::from_millis(5) * config.agents as u32);
    let tuning = Tuning {
        interval,
        timeout: Duration::from_secs(3),
        base: Duration::from_millis(200),
        cap: Duration::from_secs(2),
    };
    let run_for = config.fleet_duration;

    let HttpFleet { fakes, lives, progress, watch } =
        launch_http_fleet(config, "fleet", tmp.path(), &url, tuning, run_for)?;
    let started = tokio::time::Instant::now();
    tokio::time::sleep(run_for / 2).await;
    backend.stop().await?;
    tokio::time::sleep(interval * 2).await;
    let backend = Backend::start(port, &db, TOKEN, SECRET).await?;

    let mut report = Report::default();
    let firsts = join_lives(lives, &mut report).await;
    drop(progress);
    report.simulated = started.elapsed();
    let mut produced = HashMap::new();
    for (fake, first) in fakes.iter().zip(firsts) {
        let summary = both(first, fake.agent(fake.http.clone())?.run_once().await);
        add_summary(&mut report, &summary);
        report.duplicates += summary.duplicates;
        report.expect_eq(&format!("{}: queued at the end", fake.id), summary.queued, 0);
        produced.insert(fake.id.clone(), fake.collector.produced());
    }
    backend.stop().await?;
    report.produced = produced.values().sum();
    check_database(&db, &produced, &mut report);
    report.expect_eq("rejected", report.rejected, 0);
    report.max_queue_bytes = watch.max();
    Ok(report)
}
