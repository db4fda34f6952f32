//! Alerts: rules over time windows evaluated in rounds, the alerts they raise (pending, firing,
//! resolved), silences, and notifications delivered from an outbox with retries.
//!
//! A round measures every enabled rule on every agent in its scope from the per-minute tier
//! (one read per agent and distinct window, shared by the rules that use it), then decides and
//! writes the alerts' changes and their notifications in one transaction. On PostgreSQL that
//! transaction first takes a transaction-level advisory lock, and re-reads the open alerts under
//! it: rounds of several replicas run one after another, each seeing what the previous wrote, so
//! each firing is decided once. Notifications are outbox rows written with the firing; senders
//! claim due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so each is sent by one replica, and
//! each carries an idempotency key that stays the same for every attempt.

pub(crate) mod decide;
mod deliver;
pub(crate) mod engine;
mod markup;
mod measure;
pub(crate) mod schema;
mod send;
pub(crate) mod store;

pub(crate) use engine::{Engine, EngineSettings};
pub(crate) use store::{AlertFilter, AlertStore, Table};

use protocol::alerts::{ChannelKind, ChannelSpec, RuleSpec, SilenceSpec, matches_pattern};
use protocol::validate::{check_agent_id, is_printable_id};

/// Whether a rule looks at `agent_id`.
pub(crate) fn in_scope(rule: &RuleSpec, agent_id: &str) -> bool {
    (rule.agents.is_empty() || rule.agents.iter().any(|a| a == agent_id))
        && rule.agent_pattern.as_deref().is_none_or(|p| matches_pattern(p, agent_id))
}

/// Longest name of a rule or channel, and of a pattern.
const MAX_NAME: usize = 100;
/// Most agents one rule may list, and channels it may notify.
const MAX_LISTED: usize = 1000;
const MAX_CHANNELS: usize = 20;
const MAX_SECRET: usize = 4096;
const DAY_S: u32 = 86_400;

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= MAX_NAME
        && !name.chars().any(char::is_control);
    ok.then_some(()).ok_or_else(|| format!("{what} must be 1-{MAX_NAME} characters, no controls"))
}

fn check_pattern(pattern: Option<&str>) -> Result<(), String> {
    match pattern {
        Some(p) if !is_printable_id(p, MAX_NAME) => {
            Err(format!("agent_pattern must be 1-{MAX_NAME} printable characters"))
        }
        _ => Ok(()),
    }
}

/// Whether a rule is complete and within limits (channels are checked against the store by the
/// route).
pub(crate) fn check_rule(r: &RuleSpec) -> Result<(), String> {
    check_name("name", &r.name)?;
    match (&r.process, r.metric.needs_process()) {
        (None, true) => return Err("this metric needs `process`: the process name".into()),
        (Some(_), false) => return Err("`process` is only for the proc_* metrics".into()),
        (Some(p), true) => check_name("process", p)?,
        (None, false) => {}
    }
    match (&r.service, r.metric.needs_service()) {
        (None, true) => return Err("service_down needs `service`: the service's name".into()),
        (Some(_), false) => return Err("`service` is only for service_down".into()),
        (Some(s), true) => check_name("service", s)?,
        (None, false) => {}
    }
    match (r.threshold, r.metric.has_threshold()) {
        (None, true) => return Err("this metric needs a `threshold`".into()),
        (Some(_), false) => {
            return Err("proc_missing, offline and service_down take no threshold".into());
        }
        (Some(t), true) if !t.is_finite() => return Err("threshold must be a number".into()),
        _ => {}
    }
    if !(60..=DAY_S).contains(&r.window_s) {
        return Err("window_s must be from 60 to 86400 seconds".into());
    }
    if r.aggregate == protocol::alerts::Aggregate::Max && !r.metric.has_max() {
        return Err("aggregate max is kept for cpu and proc_cpu only; use avg".into());
    }
    if r.for_s > DAY_S {
        return Err("for_s must be at most 86400 seconds".into());
    }
    if r.repeat_s.is_some_and(|s| !(60..=7 * DAY_S).contains(&s)) {
        return Err("repeat_s must be from 60 seconds to 7 days".into());
    }
    if r.agents.len() > MAX_LISTED {
        return Err(format!("a rule may list at most {MAX_LISTED} agents"));
    }
    for a in &r.agents {
        check_agent_id(a).map_err(|e| format!("agents: {e}"))?;
    }
    check_pattern(r.agent_pattern.as_deref())?;
    if r.channels.len() > MAX_CHANNELS {
        return Err(format!("a rule may notify at most {MAX_CHANNELS} channels"));
    }
    Ok(())
}

/// Whether a channel names a receiver it can reach.
pub(crate) fn check_channel(c: &ChannelSpec) -> Result<(), String> {
    check_name("name", &c.name)?;
    if c.secret.as_ref().is_some_and(|s| s.is_empty() || s.len() > MAX_SECRET) {
        return Err(format!("secret must be 1-{MAX_SECRET} bytes"));
    }
    if c.kind == ChannelKind::Email {
        if c.url.is_some() {
            return Err("an email channel takes `email`, not `url`".into());
        }
        let Some(e) = &c.email else { return Err("an email channel needs `email`".into()) };
        check_name("email.host", &e.host)?;
        if e.to.is_empty() || e.to.len() > MAX_CHANNELS {
            return Err(format!("email.to must list 1-{MAX_CHANNELS} addresses"));
        }
        for address in std::iter::once(&e.from).chain(&e.to) {
            address
                .parse::<lettre::message::Mailbox>()
                .map_err(|_| format!("{address:?} is not an e-mail address"))?;
        }
        if let Some(pem) = &e.ca_pem {
            lettre::transport::smtp::client::Certificate::from_pem(pem.as_bytes())
                .map_err(|_| "email.ca_pem is not a PEM certificate".to_owned())?;
        }
        if e.username.is_some() != c.secret.is_some() {
            return Err("email.username and secret (the password) go together".into());
        }
        return Ok(());
    }
    if c.email.is_some() {
        return Err("only email channels take `email`".into());
    }
    let Some(url) = &c.url else { return Err("this channel needs a `url`".into()) };
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err("url must be an http:// or https:// address".into()),
    }
}

/// Whether a silence ends in the future, within a year.
pub(crate) fn check_silence(s: &SilenceSpec, now_s: i64) -> Result<(), String> {
    if s.ends_at <= now_s || s.ends_at > now_s + 366 * i64::from(DAY_S) {
        return Err("ends_at must be in the future, at most a year ahead (unix seconds)".into());
    }
    if s.comment.chars().count() > 1000 {
        return Err("comment must be at most 1000 characters".into());
    }
    check_pattern(s.agent_pattern.as_deref())
}
