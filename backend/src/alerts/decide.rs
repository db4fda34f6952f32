//! One evaluation round's decisions, as a pure function of the rules, the silences, the open
//! alerts and what was measured: which alerts start, fire, repeat or resolve, and whom to tell.
//! The stores call it inside the round's transaction, with the open alerts read there, so that
//! two replicas can never both decide the same firing.

use super::in_scope;
use protocol::alerts::{
    Aggregate, Alert, AlertState, Comparison, Metric, NotificationKind, Rule, Silence,
    matches_pattern,
};
use std::collections::{HashMap, HashSet};

/// What a round measured for one rule on one agent in its scope. A pair without a measure had
/// no data in the window: its alert, if any, stays as it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measure {
    pub(crate) breach: bool,
    /// The figure compared (seconds unheard for `offline`; none for `proc_missing`).
    pub(crate) value: Option<f64>,
}

/// What a round measured, by (rule id, agent id), and which agents the store knows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measures {
    pub(crate) of: HashMap<(i64, String), Measure>,
    /// An open alert of an agent not among these was cleared with the agent's events.
    pub(crate) agents: HashSet<String>,
}

/// An alert not resolved yet, with what the rounds keep of it beside the API's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Open {
    pub(crate) alert: Alert,
    /// When it last notified anyone.
    pub(crate) notified_ms: Option<i64>,
    /// A firing alert's breach ended then; it resolves once clear for the rule's
    /// `resolve_after_s`.
    pub(crate) clear_since_ms: Option<i64>,
}

/// One alert to write: new (`alert.id == 0`) or changed, and the notification it sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) alert: Alert,
    pub(crate) notified_ms: Option<i64>,
    pub(crate) clear_since_ms: Option<i64>,
    /// The kind, and the channels to send it to.
    pub(crate) notify: Option<(NotificationKind, Vec<i64>)>,
}

fn silenced(silences: &[Silence], now_s: i64, rule_id: i64, agent_id: &str) -> bool {
    silences.iter().any(|s| {
        s.spec.ends_at > now_s
            && s.spec.rule_id.is_none_or(|r| r == rule_id)
            && s.spec.agent_pattern.as_deref().is_none_or(|p| matches_pattern(p, agent_id))
    })
}

fn side(c: Comparison) -> &'static str {
    match c {
        Comparison::Above => "above",
        Comparison::Below => "below",
    }
}

/// A sentence for the alert: what, how much, where.
pub(crate) fn summary(rule: &Rule, agent_id: &str, value: Option<f64>) -> String {
    let s = &rule.spec;
    let process = s.process.as_deref().unwrap_or_default();
    let what = match s.metric {
        Metric::Offline => {
            let ago = value.map(|v| format!(" (last heard {v:.0} s ago)")).unwrap_or_default();
            return format!("{}: {agent_id} is offline{ago}", s.name);
        }
        Metric::ProcMissing => {
            return format!("{}: {process} is not running on {agent_id}", s.name);
        }
        Metric::ServiceDown => {
            let service = s.service.as_deref().unwrap_or_default();
            return format!("{}: service {service} is not running on {agent_id}", s.name);
        }
        Metric::LogErrors => {
            let n = value.map_or_else(|| "?".to_owned(), |v| format!("{v:.0}"));
            let t = s.threshold.map_or_else(|| "?".to_owned(), |t| format!("{t:.0}"));
            let mins = f64::from(s.window_s) / 60.0;
            return format!(
                "{}: {n} log errors in {mins} min on {agent_id} ({} {t})",
                s.name,
                side(s.comparison)
            );
        }
        Metric::Cpu => "cpu".to_owned(),
        Metric::MemUsedPct => "memory used".to_owned(),
        Metric::DiskFreePct => "disk free".to_owned(),
        Metric::NetRxBps => "network in".to_owned(),
        Metric::NetTxBps => "network out".to_owned(),
        Metric::ProcCpu => format!("{process} cpu"),
        Metric::ProcRss => format!("{process} memory"),
    };
    let unit = match s.metric {
        Metric::NetRxBps | Metric::NetTxBps => " B/s",
        Metric::ProcRss => " B",
        _ => " %",
    };
    let agg = match s.aggregate {
        Aggregate::Avg => "average",
        Aggregate::Max => "maximum",
    };
    let side = side(s.comparison);
    let num = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}{unit}"));
    let mins = f64::from(s.window_s) / 60.0;
    format!(
        "{}: {what} {agg} over {mins} min is {} on {agent_id} ({side} {})",
        s.name,
        num(value),
        num(s.threshold)
    )
}

fn new_alert(rule: &Rule, agent_id: &str, m: Measure, now_ms: i64) -> Alert {
    Alert {
        id: 0,
        rule_id: rule.id,
        rule_name: rule.spec.name.clone(),
        agent_id: agent_id.to_owned(),
        severity: rule.spec.severity,
        state: AlertState::Pending,
        value: m.value,
        threshold: rule.spec.threshold,
        started_at: now_ms / 1000,
        fired_at: None,
        resolved_at: None,
        summary: summary(rule, agent_id, m.value),
    }
}

/// The alert, firing from now on; notified unless silenced.
fn fire(mut alert: Alert, rule: &Rule, quiet: bool, now_ms: i64) -> Change {
    alert.state = AlertState::Firing;
    alert.fired_at = Some(now_ms / 1000);
    let notify = (!quiet).then(|| (NotificationKind::Firing, rule.spec.channels.clone()));
    let notified_ms = notify.as_ref().map(|_| now_ms);
    Change { alert, notified_ms, clear_since_ms: None, notify }
}

/// The round's changes; alerts that stay as they were are left out.
pub(crate) fn decide(
    now_ms: i64,
    rules: &[Rule],
    silences: &[Silence],
    open: Vec<Open>,
    measures: &Measures,
) -> Vec<Change> {
    let now_s = now_ms / 1000;
    let rules: HashMap<i64, &Rule> = rules.iter().map(|r| (r.id, r)).collect();
    let mut changes = Vec::new();
    let mut seen = HashSet::new();
    for Open { mut alert, notified_ms, clear_since_ms } in open {
        seen.insert((alert.rule_id, alert.agent_id.clone()));
        let rule = rules.get(&alert.rule_id).filter(|r| r.spec.enabled);
        let known = measures.agents.contains(&alert.agent_id);
        let Some(rule) = rule.filter(|r| in_scope(&r.spec, &alert.agent_id) && known) else {
            // Deleted, disabled or narrowed by an operator, or its agent cleared: over, and
            // nobody is told.
            alert.state = AlertState::Resolved;
            alert.resolved_at = Some(now_s);
            changes.push(Change { alert, notified_ms, clear_since_ms, notify: None });
            continue;
        };
        let Some(&m) = measures.of.get(&(alert.rule_id, alert.agent_id.clone())) else { continue };
        let quiet = silenced(silences, now_s, rule.id, &alert.agent_id);
        let channels = rule.spec.channels.clone();
        alert.rule_name.clone_from(&rule.spec.name);
        if !m.breach {
            let clear_since = clear_since_ms.unwrap_or(now_ms);
            let held = i64::from(rule.spec.resolve_after_s) * 1000;
            if alert.state == AlertState::Firing && now_ms - clear_since < held {
                // Not over until clear for a while: a figure hovering at the threshold would
                // otherwise fire and clear round after round.
                if clear_since_ms.is_none() {
                    let clear_since_ms = Some(now_ms);
                    changes.push(Change { alert, notified_ms, clear_since_ms, notify: None });
                }
                continue;
            }
            // A pending alert never fired, so nobody heard of it; a firing one that notified
            // is followed by its all-clear, even under a silence begun since.
            let notify = notified_ms.map(|_| (NotificationKind::Resolved, channels));
            alert.state = AlertState::Resolved;
            alert.resolved_at = Some(now_s);
            alert.value = m.value;
            alert.summary = summary(rule, &alert.agent_id, m.value);
            changes.push(Change { alert, notified_ms, clear_since_ms, notify });
            continue;
        }
        let kind = match (alert.state, notified_ms, rule.spec.repeat_s) {
            (AlertState::Pending, ..) => {
                if now_s - alert.started_at >= i64::from(rule.spec.for_s) {
                    alert.value = m.value;
                    alert.summary = summary(rule, &alert.agent_id, m.value);
                    changes.push(fire(alert, rule, quiet, now_ms));
                }
                continue;
            }
            (_, _, _) if quiet => None,
            // Fired under a silence that has ended: told now, as a firing.
            (_, None, _) => Some(NotificationKind::Firing),
            (_, Some(at), Some(every)) if now_ms - at >= i64::from(every) * 1000 => {
                Some(NotificationKind::Repeat)
            }
            _ => None,
        };
        if kind.is_none() && clear_since_ms.is_none() {
            continue;
        }
        // Breached again: a clear spell in progress ends.
        if kind.is_some() {
            alert.value = m.value;
            alert.summary = summary(rule, &alert.agent_id, m.value);
        }
        let notified_ms = if kind.is_some() { Some(now_ms) } else { notified_ms };
        let notify = kind.map(|k| (k, channels));
        changes.push(Change { alert, notified_ms, clear_since_ms: None, notify });
    }
    let mut fresh: Vec<(&(i64, String), &Measure)> =
        measures.of.iter().filter(|(key, m)| m.breach && !seen.contains(*key)).collect();
    // Ids are given in this order: the same round gives the same ids wherever it runs.
    fresh.sort_by(|a, b| a.0.cmp(b.0));
    for ((rule_id, agent_id), &m) in fresh {
        let Some(rule) = rules.get(rule_id).filter(|r| r.spec.enabled) else { continue };
        let alert = new_alert(rule, agent_id, m, now_ms);
        // A rule without a hold fires in the round that first sees the breach.
        changes.push(if rule.spec.for_s > 0 {
            Change { alert, notified_ms: None, clear_since_ms: None, notify: None }
        } else {
            fire(alert, rule, silenced(silences, now_s, rule.id, agent_id), now_ms)
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::alerts::{RuleSpec, SilenceSpec};

    fn rule(id: i64, for_s: u32, repeat_s: Option<u32>) -> Rule {
        let mut spec: RuleSpec =
            serde_json::from_str(r#"{"name": "hot", "metric": "cpu", "threshold": 80}"#).unwrap();
        spec.for_s = for_s;
        spec.repeat_s = repeat_s;
        spec.resolve_after_s = 0;
        spec.channels = vec![7];
        Rule { id, spec }
    }

    /// Agent `a` measured for rule 1 (`None`: known, but without data in the window).
    fn measures(breach: Option<bool>) -> Measures {
        let of = breach.map(|breach| {
            let value = Some(if breach { 95.0 } else { 10.0 });
            ((1, "a".to_owned()), Measure { breach, value })
        });
        Measures { of: of.into_iter().collect(), agents: HashSet::from(["a".to_owned()]) }
    }

    /// Runs rounds at the given seconds with the given breaches, carrying the open alerts from
    /// round to round as a store would; returns what each round notified.
    fn rounds(
        rule: &Rule,
        silences: &[Silence],
        steps: &[(i64, Option<bool>)],
    ) -> Vec<Option<NotificationKind>> {
        let mut open: Vec<Open> = Vec::new();
        let mut next_id = 1;
        let mut out = Vec::new();
        for &(at_s, breach) in steps {
            let m = measures(breach);
            let changes =
                decide(at_s * 1000, std::slice::from_ref(rule), silences, open.clone(), &m);
            assert!(changes.len() <= 1);
            let mut notified = None;
            for mut c in changes {
                if c.alert.id == 0 {
                    c.alert.id = next_id;
                    next_id += 1;
                }
                notified = c.notify.as_ref().map(|(k, _)| *k);
                open.retain(|o| o.alert.id != c.alert.id);
                if c.alert.state != AlertState::Resolved {
                    let (notified_ms, clear_since_ms) = (c.notified_ms, c.clear_since_ms);
                    open.push(Open { alert: c.alert, notified_ms, clear_since_ms });
                }
            }
            out.push(notified);
        }
        out
    }

    use NotificationKind::{Firing, Repeat, Resolved};

    #[test]
    fn a_breach_fires_at_once_without_a_hold_and_resolves_with_an_all_clear() {
        let got =
            rounds(&rule(1, 0, None), &[], &[(0, Some(true)), (30, Some(true)), (60, Some(false))]);
        assert_eq!(got, [Some(Firing), None, Some(Resolved)]);
    }

    #[test]
    fn a_hold_keeps_it_pending_and_a_short_breach_tells_nobody() {
        let r = rule(1, 60, None);
        let short = rounds(&r, &[], &[(0, Some(true)), (30, Some(true)), (59, Some(false))]);
        assert_eq!(short, [None, None, None], "resolved while pending: silent");
        let held = rounds(&r, &[], &[(0, Some(true)), (30, Some(true)), (60, Some(true))]);
        assert_eq!(held, [None, None, Some(Firing)]);
    }

    #[test]
    fn a_figure_hovering_at_the_threshold_fires_once_and_clears_once() {
        let mut r = rule(1, 0, None);
        r.spec.resolve_after_s = 60;
        let steps = [
            (0, Some(true)),
            (10, Some(false)),
            (20, Some(true)),
            (30, Some(false)),
            (80, Some(false)),
            (90, Some(false)),
        ];
        assert_eq!(rounds(&r, &[], &steps), [Some(Firing), None, None, None, None, Some(Resolved)]);
    }

    #[test]
    fn no_data_leaves_an_alert_as_it_is() {
        let got = rounds(&rule(1, 0, None), &[], &[(0, Some(true)), (30, None), (60, Some(false))]);
        assert_eq!(got, [Some(Firing), None, Some(Resolved)]);
    }

    #[test]
    fn repeats_come_at_the_rules_interval() {
        let steps = [
            (0, Some(true)),
            (30, Some(true)),
            (60, Some(true)),
            (90, Some(true)),
            (120, Some(true)),
        ];
        assert_eq!(
            rounds(&rule(1, 0, Some(60)), &[], &steps),
            [Some(Firing), None, Some(Repeat), None, Some(Repeat)]
        );
    }

    #[test]
    fn a_silence_mutes_until_it_ends_then_the_firing_is_told() {
        let silence = Silence {
            id: 1,
            spec: SilenceSpec {
                rule_id: Some(1),
                agent_pattern: Some("a*".into()),
                ends_at: 50,
                comment: String::new(),
            },
        };
        let steps = [(0, Some(true)), (30, Some(true)), (60, Some(true)), (90, Some(false))];
        assert_eq!(
            rounds(&rule(1, 0, None), std::slice::from_ref(&silence), &steps),
            [None, None, Some(Firing), Some(Resolved)]
        );
        // Resolved under the silence, having never been told: nobody hears of it.
        let quiet = [(0, Some(true)), (30, Some(false))];
        assert_eq!(rounds(&rule(1, 0, None), &[silence], &quiet), [None, None]);
    }

    #[test]
    fn a_deleted_or_disabled_rule_resolves_its_alerts_silently() {
        let r = rule(1, 0, None);
        let open = decide(0, std::slice::from_ref(&r), &[], vec![], &measures(Some(true)));
        let open =
            vec![Open { alert: open[0].alert.clone(), notified_ms: Some(0), clear_since_ms: None }];
        let gone = decide(1000, &[], &[], open.clone(), &measures(Some(true)));
        assert_eq!((gone[0].alert.state, gone[0].notify.clone()), (AlertState::Resolved, None));
        let mut off = r;
        off.spec.enabled = false;
        let disabled = decide(1000, &[off], &[], open, &measures(Some(true)));
        assert_eq!(disabled[0].alert.state, AlertState::Resolved);
        assert_eq!(disabled[0].notify, None);
    }

    #[test]
    fn an_alert_of_a_cleared_agent_resolves_silently() {
        let r = rule(1, 0, None);
        let fired = decide(0, std::slice::from_ref(&r), &[], vec![], &measures(Some(true)));
        let open = vec![Open {
            alert: fired[0].alert.clone(),
            notified_ms: Some(0),
            clear_since_ms: None,
        }];
        let gone = decide(1000, &[r], &[], open, &Measures::default());
        assert_eq!((gone[0].alert.state, gone[0].notify.clone()), (AlertState::Resolved, None));
    }

    #[test]
    fn summaries_say_what_where_and_how_much() {
        let r = rule(1, 0, None);
        assert_eq!(
            summary(&r, "web-01", Some(93.25)),
            "hot: cpu average over 5 min is 93.2 % on web-01 (above 80.0 %)"
        );
    }
}
