//! The alert load of `--stores sqlite-rules`: 50 rules over every agent, evaluated every 10 s
//! (a third of the default interval), so that the bench shows what rule evaluation costs ingest.

use super::*;

const RULES: usize = 50;
pub(crate) const ADMIN_TOKEN: &str = "bench-admin-token";
/// Seconds between rounds of the target with rules; the others evaluate nothing.
pub(crate) const EVAL_SECONDS: &str = "10";

/// The `i`th rule: every kind of metric, three windows, three process names, all agents.
fn rule(i: usize) -> serde_json::Value {
    let window = [60, 300, 900][(i / 10) % 3];
    let (metric, extra) = match i % 10 {
        0 => ("cpu", serde_json::json!({"threshold": 95})),
        1 => ("cpu", serde_json::json!({"threshold": 99, "aggregate": "max"})),
        2 => ("mem_used_pct", serde_json::json!({"threshold": 97})),
        3 => ("disk_free_pct", serde_json::json!({"threshold": 1, "comparison": "below"})),
        4 => ("net_rx_bps", serde_json::json!({"threshold": 1e9})),
        5 => ("net_tx_bps", serde_json::json!({"threshold": 1e9})),
        6 => ("proc_cpu", serde_json::json!({"threshold": 90, "process": "chrome.exe"})),
        7 => ("proc_rss", serde_json::json!({"threshold": 1e10, "process": "svchost.exe"})),
        8 => ("proc_missing", serde_json::json!({"process": "explorer.exe"})),
        _ => ("offline", serde_json::json!({})),
    };
    let mut rule =
        serde_json::json!({"name": format!("bench {i}"), "metric": metric, "window_s": window});
    if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
        rule.extend(extra.clone());
    }
    rule
}

/// Creates the rules through the API, as an operator would.
pub(crate) fn create_rules(addr: SocketAddr) -> anyhow::Result<()> {
    for i in 0..RULES {
        let body = rule(i).to_string();
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "POST /api/alerts/rules HTTP/1.0\r\nHost: {addr}\r\nX-Api-Token: {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        ensure!(
            answer.starts_with("HTTP/1.0 201") || answer.starts_with("HTTP/1.1 201"),
            "creating rule {i}: {answer}"
        );
    }
    Ok(())
}

/// How many rounds ran and their mean time, from the backend's `/metrics`.
pub(crate) fn round_times(metrics: &str) -> (f64, f64) {
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let n = value("telemetry_alert_round_seconds_count");
    (n, value("telemetry_alert_round_seconds_sum") / n.max(1.0))
}
