//! Alerts against the real backend, in fast time: each agent's CPU is scripted over two hours of
//! readings stamped in the past (quiet spells, short spikes, and sustained high load that flaps
//! around the threshold), played ten seconds a step with an alert round after each step. The
//! webhook receiver is down for a stretch in the middle. Every sustained spell must fire exactly
//! one alert, no spike may fire one, every alert must resolve, and every notification (a firing
//! and an all-clear per alert) must reach the receiver exactly once.

use super::{SECRET, TOKEN};
use crate::backend::Backend;
use crate::{Config, Report, SimError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Readings are this far apart (the agents' clock).
const STEP_S: i64 = 10;
/// Two hours of readings played.
const STEPS: usize = 720;
/// The rule: average cpu over five minutes above 80 %.
const THRESHOLD: f64 = 80.0;
const WINDOW_S: i64 = 300;
/// Agents in this scenario at most: each costs a series read per round.
const MAX_AGENTS: usize = 25;
const ADMIN: &str = "sim-admin";

/// What one agent does during one stretch of its run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spell {
    /// 10-40 %.
    Quiet,
    /// 100 % for at most a minute, inside a quiet spell.
    Spike,
    /// 75-100 % (it crosses the threshold both ways every few readings), for twice the window
    /// or more: the average stays above it.
    Sustained,
}

/// An agent's two hours: a spell per step, and how many sustained spells it holds. A spike
/// comes only after a quiet spell longer than the window (plus the minute a window starts in)
/// and the rule's minute of clear before it resolves, so an alert is over before anything else
/// can begin.
fn script(rng: &mut fastrand::Rng) -> (Vec<Spell>, u64) {
    let minutes = |m: usize| m * 60 / STEP_S as usize;
    let mut spells = Vec::with_capacity(STEPS);
    let mut sustained = 0;
    let push = |spells: &mut Vec<Spell>, spell, n| spells.extend(std::iter::repeat_n(spell, n));
    // Each pass adds at most 36 minutes; the run ends with at least 10 quiet ones, so that the
    // last alert resolves in it.
    while spells.len() + minutes(36 + 10) <= STEPS {
        push(&mut spells, Spell::Quiet, minutes(8) + rng.usize(0..minutes(2)));
        push(&mut spells, Spell::Spike, rng.usize(1..=minutes(1)));
        push(&mut spells, Spell::Quiet, minutes(8) + rng.usize(0..minutes(2)));
        if rng.bool() {
            push(&mut spells, Spell::Sustained, minutes(10) + rng.usize(0..minutes(5)));
            sustained += 1;
        }
    }
    let rest = STEPS - spells.len();
    push(&mut spells, Spell::Quiet, rest);
    (spells, sustained)
}

fn cpu(spell: Spell, rng: &mut fastrand::Rng) -> f64 {
    match spell {
        Spell::Quiet => 0.1 + 0.3 * rng.f64(),
        Spell::Spike => 1.0,
        Spell::Sustained => 0.75 + 0.25 * rng.f64(),
    }
}

/// The webhook: 503 while `down`, else 200, counting each idempotency key it accepted and
/// keeping the order of each alert's notifications.
struct Receiver {
    down: Arc<AtomicBool>,
    accepted: Arc<Mutex<HashMap<String, u64>>>,
    kinds: Arc<Mutex<HashMap<i64, Vec<String>>>>,
}

impl Respond for Receiver {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.down.load(Relaxed) {
            return ResponseTemplate::new(503);
        }
        let key = request.headers.get("idempotency-key").and_then(|v| v.to_str().ok());
        *self.accepted.lock().unwrap().entry(key.unwrap_or_default().to_owned()).or_default() += 1;
        if let Ok(body) = serde_json::from_slice::<Value>(&request.body) {
            let (alert, kind) = (body["alert"]["id"].as_i64(), body["kind"].as_str());
            if let (Some(alert), Some(kind)) = (alert, kind) {
                self.kinds.lock().unwrap().entry(alert).or_default().push(kind.to_owned());
            }
        }
        ResponseTemplate::new(200)
    }
}

async fn admin_post(http: &reqwest::Client, url: String, body: Value) -> Result<Value, SimError> {
    let response = http.post(url).header(protocol::HEADER_TOKEN, ADMIN).json(&body).send();
    let response = response.await.map_err(|e| SimError::setup("an alert setting", e))?;
    if !response.status().is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(SimError::setup("an alert setting", text));
    }
    response.json().await.map_err(|e| SimError::setup("an alert setting's answer", e))
}

async fn get(http: &reqwest::Client, url: String) -> Result<Value, SimError> {
    let response = http.get(url).send().await.map_err(|e| SimError::setup("a read", e))?;
    response.json().await.map_err(|e| SimError::setup("a read's answer", e))
}

async fn ingest(
    http: &reqwest::Client,
    base: &str,
    batch: &protocol::IngestBatch,
) -> Result<bool, SimError> {
    let body = serde_json::to_vec(batch).map_err(|e| SimError::setup("a batch", e))?;
    let ts = (backend::clock::now_ms() / 1000).to_string();
    let signature = protocol::sign(SECRET.as_bytes(), &ts, &body);
    let response = http
        .post(format!("{base}/api/ingest"))
        .header("content-type", "application/json")
        .header(protocol::HEADER_TOKEN, TOKEN)
        .header(protocol::HEADER_SIGNATURE_TS, ts)
        .header(protocol::HEADER_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| SimError::setup("ingest", e))?;
    Ok(response.status().is_success())
}

pub(crate) async fn run(config: &Config) -> Result<Report, SimError> {
    let tmp = tempfile::tempdir().map_err(|e| SimError::setup("temporary folder", e))?;
    let db = tmp.path().join("telemetry.db");
    let more =
        [("ADMIN_TOKEN", ADMIN), ("ALERT_EVAL_SECONDS", "0"), ("ALERT_RETRY_MAX_SECONDS", "1")];
    let backend = Backend::start_with(0, &db, TOKEN, SECRET, &more).await?;
    let base = backend.url();
    let http = reqwest::Client::new();
    let (down, accepted) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let kinds: Arc<Mutex<HashMap<i64, Vec<String>>>> = Arc::default();
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(Receiver {
            down: down.clone(),
            accepted: Arc::clone(&accepted),
            kinds: kinds.clone(),
        })
        .mount(&hook)
        .await;
    let channel = admin_post(
        &http,
        format!("{base}/api/alerts/channels"),
        json!({"name": "sim", "kind": "webhook", "url": format!("{}/hook", hook.uri())}),
    )
    .await?;
    let rule = json!({"name": "busy", "metric": "cpu", "threshold": THRESHOLD,
                      "window_s": WINDOW_S, "channels": [channel["id"]]});
    admin_post(&http, format!("{base}/api/alerts/rules"), rule).await?;

    let agents = config.agents.clamp(1, MAX_AGENTS);
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let scripts: Vec<(String, Vec<Spell>, u64)> = (0..agents)
        .map(|n| {
            let (spells, sustained) = script(&mut rng);
            (format!("sim-alert-{n:03}"), spells, sustained)
        })
        .collect();
    let mut report = Report::default();
    // The run ends now, so that the backend's own clock never sees readings from its future.
    let start_ms = backend::clock::now_ms() - STEPS as i64 * STEP_S * 1000;
    for step in 0..STEPS {
        // The receiver is down for the run's third quarter.
        down.store((STEPS / 2..STEPS * 3 / 4).contains(&step), Relaxed);
        let at_ms = start_ms + step as i64 * STEP_S * 1000;
        for (id, spells, _) in &scripts {
            let batch = protocol::IngestBatch {
                agent_id: id.clone(),
                ts: backend::clock::format_ms(at_ms),
                platform: "windows".into(),
                batch_id: Some(format!("{id}-{step}")),
                events: vec![protocol::Event {
                    cpu: Some(cpu(spells[step], &mut rng)),
                    ..protocol::Event::empty(protocol::EventKind::Metric)
                }],
                agent: None,
                drives: None,
                host: None,
                notices: None,
                services: None,
            };
            report.produced += 1;
            report.delivered += u64::from(ingest(&http, &base, &batch).await?);
        }
        backend.rounds.round_at(at_ms).await.map_err(|e| SimError::setup("a round", e))?;
        if config.progress && step % 60 == 59 {
            eprintln!("[alerts] {} of {STEPS} steps", step + 1);
        }
    }
    down.store(false, Relaxed);
    report.simulated = Duration::from_secs(STEPS as u64 * STEP_S as u64);

    // Every notification delivered: the receiver is back, and retries wait a second at most.
    let started = tokio::time::Instant::now();
    let deliveries = loop {
        let d = get(&http, format!("{base}/api/alerts/notifications?limit=500")).await?;
        let rows = d.as_array().cloned().unwrap_or_default();
        if rows.iter().all(|r| r["delivered_at"].is_i64())
            || started.elapsed() > Duration::from_secs(30)
        {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut alerts = 0;
    for (id, _, sustained) in &scripts {
        let list = get(&http, format!("{base}/api/alerts?agent_id={id}&limit=500")).await?;
        let list = list.as_array().cloned().unwrap_or_default();
        report.expect_eq(&format!("{id}: alerts fired"), list.len() as u64, *sustained);
        let open = list.iter().filter(|a| a["state"] != "resolved").count();
        report.expect_eq(&format!("{id}: alerts still open"), open as u64, 0);
        alerts += list.len() as u64;
    }
    let accepted = accepted.lock().unwrap().clone();
    report.expect_eq("notifications written", deliveries.len() as u64, alerts * 2);
    let undelivered = deliveries.iter().filter(|d| !d["delivered_at"].is_i64()).count();
    report.expect_eq("notifications undelivered", undelivered as u64, 0);
    report.expect_eq("notifications received", accepted.len() as u64, alerts * 2);
    for (alert, told) in kinds.lock().unwrap().iter() {
        if told != &["firing", "resolved"] {
            report
                .fail(format!("alert {alert} was told {told:?}, not a firing then its all-clear"));
        }
    }
    report.duplicates = accepted.values().map(|n| n - 1).sum();
    report.expect_eq("notifications received twice", report.duplicates, 0);
    report.retries =
        deliveries.iter().map(|d| d["attempts"].as_u64().unwrap_or(1).saturating_sub(1)).sum();
    if alerts == 0 || report.retries == 0 {
        report.fail(format!("the run tested little: {alerts} alerts, {} retries", report.retries));
    }
    backend.stop().await?;
    Ok(report)
}
