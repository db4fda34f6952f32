//! The rule, channel and silence forms as the user types them (text fields), and their turning
//! into what the API takes. Only what a browser form cannot express (a number, a list) is
//! checked here; the backend checks the rest and its `422` reason is shown as it is.

use protocol::alerts::{
    Aggregate, ChannelKind, ChannelSpec, Comparison, EmailSpec, Metric, Rule, RuleSpec, Severity,
    SilenceSpec, SmtpSecurity,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) const METRICS: [Metric; 11] = [
    Metric::Cpu,
    Metric::MemUsedPct,
    Metric::DiskFreePct,
    Metric::NetRxBps,
    Metric::NetTxBps,
    Metric::ProcCpu,
    Metric::ProcRss,
    Metric::ProcMissing,
    Metric::Offline,
    Metric::ServiceDown,
    Metric::LogErrors,
];
pub(crate) const SEVERITIES: [Severity; 3] =
    [Severity::Info, Severity::Warning, Severity::Critical];
pub(crate) const KINDS: [ChannelKind; 6] = [
    ChannelKind::Webhook,
    ChannelKind::Slack,
    ChannelKind::Discord,
    ChannelKind::Teams,
    ChannelKind::Ntfy,
    ChannelKind::Email,
];
pub(crate) const SECURITIES: [SmtpSecurity; 3] =
    [SmtpSecurity::Starttls, SmtpSecurity::Tls, SmtpSecurity::None];

/// A value's name on the wire (`mem_used_pct`), which is also what a `<select>` holds.
pub(crate) fn wire<T: Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The options of a `<select>`.
pub(crate) fn names<T: Serialize + Copy>(items: &[T]) -> Vec<String> {
    items.iter().copied().map(wire).collect()
}

/// The value a `<select>` holds; `fallback` for anything else.
pub(crate) fn from_wire<T: DeserializeOwned>(name: &str, fallback: T) -> T {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap_or(fallback)
}

fn number<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| format!("{field}: “{text}” is not a number"))
}

fn text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn list(value: &str) -> Vec<String> {
    value.split(',').filter_map(text).collect()
}

fn shown<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleForm {
    /// The rule replaced on save; a new one when `None`.
    pub id: Option<i64>,
    pub name: String,
    pub metric: Metric,
    pub process: String,
    pub service: String,
    pub comparison: Comparison,
    pub threshold: String,
    pub window_s: String,
    pub aggregate: Aggregate,
    pub for_s: String,
    pub resolve_after_s: String,
    /// Comma-separated agent ids.
    pub agents: String,
    pub agent_pattern: String,
    pub severity: Severity,
    pub repeat_s: String,
    /// Comma-separated channel ids.
    pub channels: String,
    pub enabled: bool,
}

impl Default for RuleForm {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            metric: Metric::Cpu,
            process: String::new(),
            service: String::new(),
            comparison: Comparison::Above,
            threshold: String::new(),
            window_s: "300".to_owned(),
            aggregate: Aggregate::Avg,
            for_s: "0".to_owned(),
            resolve_after_s: "60".to_owned(),
            agents: String::new(),
            agent_pattern: String::new(),
            severity: Severity::Warning,
            repeat_s: String::new(),
            channels: String::new(),
            enabled: true,
        }
    }
}

impl RuleForm {
    pub(crate) fn edit(rule: &Rule) -> Self {
        let s = &rule.spec;
        let join = |items: Vec<String>| items.join(", ");
        Self {
            id: Some(rule.id),
            name: s.name.clone(),
            metric: s.metric,
            process: s.process.clone().unwrap_or_default(),
            service: s.service.clone().unwrap_or_default(),
            comparison: s.comparison,
            threshold: shown(s.threshold),
            window_s: s.window_s.to_string(),
            aggregate: s.aggregate,
            for_s: s.for_s.to_string(),
            resolve_after_s: s.resolve_after_s.to_string(),
            agents: join(s.agents.clone()),
            agent_pattern: s.agent_pattern.clone().unwrap_or_default(),
            severity: s.severity,
            repeat_s: shown(s.repeat_s),
            channels: join(s.channels.iter().map(i64::to_string).collect()),
            enabled: s.enabled,
        }
    }

    pub(crate) fn spec(&self) -> Result<RuleSpec, String> {
        let channels = list(&self.channels)
            .iter()
            .map(|c| c.parse().map_err(|_| format!("channels: “{c}” is not a channel id")))
            .collect::<Result<_, _>>()?;
        Ok(RuleSpec {
            name: self.name.trim().to_owned(),
            metric: self.metric,
            process: text(&self.process).filter(|_| self.metric.needs_process()),
            comparison: self.comparison,
            threshold: number("threshold", &self.threshold)?
                .filter(|_| self.metric.has_threshold()),
            window_s: number("window", &self.window_s)?.unwrap_or(300),
            aggregate: self.aggregate,
            for_s: number("for", &self.for_s)?.unwrap_or(0),
            resolve_after_s: number("resolve after", &self.resolve_after_s)?.unwrap_or(60),
            agents: list(&self.agents),
            agent_pattern: text(&self.agent_pattern),
            severity: self.severity,
            repeat_s: number("repeat", &self.repeat_s)?,
            channels,
            enabled: self.enabled,
            service: text(&self.service).filter(|_| self.metric.needs_service()),
        })
    }
}

/// A rule's condition in a few words: `cpu avg above 90 over 300 s for 60 s`.
pub(crate) fn condition(spec: &RuleSpec) -> String {
    let mut out = wire(spec.metric);
    if let Some(p) = spec.process.as_ref().or(spec.service.as_ref()) {
        out.push_str(&format!(" of {p}"));
    }
    if let (true, Some(t)) = (spec.metric.has_threshold(), spec.threshold) {
        out.push_str(&format!(" {} {} {t}", wire(spec.aggregate), wire(spec.comparison)));
    }
    out.push_str(&format!(" over {} s", spec.window_s));
    if spec.for_s > 0 {
        out.push_str(&format!(" for {} s", spec.for_s));
    }
    out
}

/// Which agents a rule or silence covers.
pub(crate) fn scope(agents: &[String], pattern: Option<&str>) -> String {
    match (agents.is_empty(), pattern) {
        (true, None) => "every agent".to_owned(),
        (true, Some(p)) => p.to_owned(),
        (false, None) => agents.join(", "),
        (false, Some(p)) => format!("{} matching {p}", agents.join(", ")),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChannelForm {
    pub id: Option<i64>,
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    /// Write-only: left empty, a replacement keeps the stored one.
    pub secret: String,
    pub has_secret: bool,
    pub host: String,
    pub port: String,
    pub security: SmtpSecurity,
    pub username: String,
    pub from: String,
    /// Comma-separated addresses.
    pub to: String,
    /// A private CA's certificate; empty: the public roots only.
    pub ca_pem: String,
}

impl Default for ChannelForm {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            kind: ChannelKind::Webhook,
            url: String::new(),
            secret: String::new(),
            has_secret: false,
            host: String::new(),
            port: String::new(),
            security: SmtpSecurity::Starttls,
            username: String::new(),
            from: String::new(),
            to: String::new(),
            ca_pem: String::new(),
        }
    }
}

impl ChannelForm {
    pub(crate) fn edit(channel: &protocol::alerts::Channel) -> Self {
        let email = channel.email.as_ref();
        Self {
            id: Some(channel.id),
            name: channel.name.clone(),
            kind: channel.kind,
            url: channel.url.clone().unwrap_or_default(),
            secret: String::new(),
            has_secret: channel.has_secret,
            host: email.map(|e| e.host.clone()).unwrap_or_default(),
            port: shown(email.and_then(|e| e.port)),
            security: email.map(|e| e.security).unwrap_or_default(),
            username: email.and_then(|e| e.username.clone()).unwrap_or_default(),
            from: email.map(|e| e.from.clone()).unwrap_or_default(),
            to: email.map(|e| e.to.join(", ")).unwrap_or_default(),
            ca_pem: email.and_then(|e| e.ca_pem.clone()).unwrap_or_default(),
        }
    }

    pub(crate) fn spec(&self) -> Result<ChannelSpec, String> {
        let email = self.kind == ChannelKind::Email;
        Ok(ChannelSpec {
            name: self.name.trim().to_owned(),
            kind: self.kind,
            url: text(&self.url).filter(|_| !email),
            secret: (!self.secret.is_empty()).then(|| self.secret.clone()),
            email: match email {
                true => Some(EmailSpec {
                    host: self.host.trim().to_owned(),
                    port: number("port", &self.port)?,
                    security: self.security,
                    username: text(&self.username),
                    ca_pem: text(&self.ca_pem),
                    from: self.from.trim().to_owned(),
                    to: list(&self.to),
                }),
                false => None,
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SilenceForm {
    /// Empty: every rule.
    pub rule_id: String,
    pub agent_pattern: String,
    pub hours: String,
    pub comment: String,
}

impl Default for SilenceForm {
    fn default() -> Self {
        Self {
            rule_id: String::new(),
            agent_pattern: String::new(),
            hours: "1".to_owned(),
            comment: String::new(),
        }
    }
}

impl SilenceForm {
    /// The silence ending `hours` after `now_s` (unix seconds).
    pub(crate) fn spec(&self, now_s: i64) -> Result<SilenceSpec, String> {
        let hours: f64 = number("hours", &self.hours)?.ok_or("hours: how long it lasts")?;
        Ok(SilenceSpec {
            rule_id: number("rule", &self.rule_id)?,
            agent_pattern: text(&self.agent_pattern),
            ends_at: now_s + (hours * 3600.0).round() as i64,
            comment: self.comment.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_form_round_trips_and_drops_what_its_metric_ignores() {
        let form = RuleForm {
            name: " hot ".into(),
            threshold: "90".into(),
            process: "ignored.exe".into(),
            agents: "pc-1, ,pc-2".into(),
            channels: "3,4".into(),
            repeat_s: "3600".into(),
            ..RuleForm::default()
        };
        let spec = form.spec().unwrap();
        assert_eq!((spec.name.as_str(), spec.threshold, &spec.process), ("hot", Some(90.0), &None));
        assert_eq!(
            (spec.agents.len(), spec.channels.clone(), spec.repeat_s),
            (2, vec![3, 4], Some(3600))
        );
        let rule = Rule { id: 7, spec: spec.clone() };
        assert_eq!(RuleForm::edit(&rule).spec().unwrap(), spec);
        assert_eq!(condition(&spec), "cpu avg above 90 over 300 s");

        let missing =
            RuleForm { metric: Metric::ProcMissing, process: "sql.exe".into(), ..form.clone() };
        let spec = missing.spec().unwrap();
        assert_eq!((spec.threshold, spec.process.as_deref()), (None, Some("sql.exe")));
        assert_eq!(condition(&spec), "proc_missing of sql.exe over 300 s");

        let down = RuleForm { metric: Metric::ServiceDown, service: " Spooler ".into(), ..form };
        let spec = down.spec().unwrap();
        assert_eq!(
            (spec.threshold, spec.process.as_deref(), spec.service.as_deref()),
            (None, None, Some("Spooler"))
        );
        assert_eq!(condition(&spec), "service_down of Spooler over 300 s");
        assert_eq!(RuleForm::edit(&Rule { id: 8, spec: spec.clone() }).spec().unwrap(), spec);
    }

    #[test]
    fn numbers_that_are_not_say_which_field() {
        let form = RuleForm { window_s: "5 min".into(), ..RuleForm::default() };
        assert_eq!(form.spec().unwrap_err(), "window: “5 min” is not a number");
        let form = RuleForm { channels: "ops".into(), ..RuleForm::default() };
        assert_eq!(form.spec().unwrap_err(), "channels: “ops” is not a channel id");
    }

    #[test]
    fn an_empty_secret_keeps_the_stored_one() {
        let channel = protocol::alerts::Channel {
            id: 2,
            name: "mail".into(),
            kind: ChannelKind::Email,
            url: None,
            email: Some(EmailSpec {
                host: "smtp.example".into(),
                port: Some(465),
                security: SmtpSecurity::Tls,
                username: None,
                ca_pem: None,
                from: "a@example".into(),
                to: vec!["b@example".into(), "c@example".into()],
            }),
            has_secret: true,
        };
        let form = ChannelForm::edit(&channel);
        let spec = form.spec().unwrap();
        assert_eq!((spec.secret, spec.url), (None, None));
        assert_eq!(spec.email, channel.email);
        let typed = ChannelForm { secret: "pw".into(), kind: ChannelKind::Slack, ..form };
        let spec = typed.spec().unwrap();
        assert_eq!((spec.secret.as_deref(), spec.email), (Some("pw"), None));
    }

    #[test]
    fn a_silence_ends_hours_from_now() {
        let form =
            SilenceForm { rule_id: "4".into(), hours: "1.5".into(), ..SilenceForm::default() };
        let spec = form.spec(1000).unwrap();
        assert_eq!((spec.rule_id, spec.ends_at, spec.agent_pattern), (Some(4), 6400, None));
    }

    #[test]
    fn select_values_are_wire_names() {
        assert_eq!(wire(Metric::MemUsedPct), "mem_used_pct");
        assert_eq!(from_wire("critical", Severity::Info), Severity::Critical);
        assert_eq!(from_wire("nonsense", Severity::Info), Severity::Info);
    }
}
