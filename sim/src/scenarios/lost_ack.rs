//! Lost acknowledgement, against the real backend on real time: a proxy in front of it forwards
//! every request, but for some stored batches the answer never reaches the agent (cut off mid-way,
//! or held past the agent's timeout). The retry must be recognised as a duplicate, the database
//! must hold each reading once, and each batch whose answer was lost counts one duplicate.

use super::fake::Tuning;
use super::{
    HttpFleet, SECRET, TOKEN, add_summary, both, check_database, join_lives, launch_http_fleet,
};
use crate::backend::Backend;
use crate::numbered::Stamp;
use crate::{Config, Report, SimError};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(1);
const RUN: Duration = Duration::from_secs(4);
const LOSE_PERCENT: u8 = 25;

#[derive(Clone)]
struct Proxy {
    client: reqwest::Client,
    upstream: String,
    losing: Arc<AtomicBool>,
    rng: Arc<Mutex<fastrand::Rng>>,
    /// batch ids whose stored answer was lost at least once
    lost: Arc<Mutex<HashSet<String>>>,
}

impl Proxy {
    /// None: deliver the answer; Some(true): cut it off; Some(false): hold it past the timeout.
    fn lose(&self) -> Option<bool> {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.losing.load(Relaxed) && rng.u8(..100) < LOSE_PERCENT).then(|| rng.bool())
    }
}

async fn forward(State(proxy): State<Proxy>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 4 << 20).await else {
        return plain(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let mut headers = parts.headers.clone();
    headers.remove(header::HOST);
    let target = format!("{}{}", proxy.upstream, parts.uri);
    let sent =
        proxy.client.request(parts.method, target).headers(headers).body(body.clone()).send();
    let (status, answer) = match sent.await {
        Ok(r) => (r.status(), r.bytes().await.unwrap_or_default()),
        Err(e) => return plain(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let ingest = parts.uri.path() == "/api/ingest";
    if let (true, true, Some(cut)) = (ingest, status.is_success(), proxy.lose()) {
        if let Ok(stamp) = Stamp::of(&body) {
            proxy
                .lost
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(stamp.batch_id);
        }
        if cut {
            // Headers go out, then the connection breaks before the body.
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("answer lost"))
            });
            return Response::new(Body::from_stream(broken));
        }
        tokio::time::sleep(TIMEOUT * 2).await;
    }
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("valid"));
    response
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut response = Response::new(Body::from(text.to_owned()));
    *response.status_mut() = status;
    response
}

pub(crate) async fn run(config: &Config) -> Result<Report, SimError> {
    let tmp = tempfile::tempdir().map_err(|e| SimError::setup("temporary folder", e))?;
    let db = tmp.path().join("telemetry.db");
    let backend = Backend::start(0, &db, TOKEN, SECRET).await?;
    let proxy = Proxy {
        client: reqwest::Client::new(),
        upstream: backend.url(),
        losing: Arc::new(AtomicBool::new(true)),
        rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(config.seed))),
        lost: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| SimError::setup("binding the proxy", e))?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| SimError::setup("proxy", e))?);
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    let tuning = Tuning {
        interval: Duration::from_millis(250).max(Duration::from_millis(6) * config.agents as u32),
        timeout: TIMEOUT,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };
    let HttpFleet { fakes, lives, progress, watch } =
        launch_http_fleet(config, "lost-ack", tmp.path(), &url, tuning, RUN)?;
    let mut report = Report { simulated: RUN, ..Report::default() };
    let firsts = join_lives(lives, &mut report).await;
    drop(progress);
    proxy.losing.store(false, Relaxed);
    let mut produced = HashMap::new();
    for (fake, first) in fakes.iter().zip(firsts) {
        let summary = both(first, fake.agent(fake.http.clone())?.run_once().await);
        add_summary(&mut report, &summary);
        report.duplicates += summary.duplicates;
        report.expect_eq(&format!("{}: queued at the end", fake.id), summary.queued, 0);
        produced.insert(fake.id.clone(), fake.collector.produced());
    }
    serving.abort();
    backend.stop().await?;
    report.produced = produced.values().sum();
    check_database(&db, &produced, &mut report);
    let lost = proxy.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() as u64;
    if lost == 0 {
        report.fail("no answer was lost, so nothing was tested");
    }
    // Each batch whose answer the proxy lost must come back as a duplicate; a loaded backend
    // can add more, when an agent's own timeout gives up on an answer still on its way.
    if report.duplicates < lost {
        report.fail(format!("{lost} answers lost but only {} duplicates", report.duplicates));
    }
    report.expect_eq("rejected", report.rejected, 0);
    report.max_queue_bytes = watch.max();
    Ok(report)
}
