//! What the dashboard knows of alerts: the open ones (pending or firing) by id, and a bounded
//! history of every alert seen live or fetched.
//!
//! An alert only moves forward (pending, firing, resolved), so a copy that is behind the one
//! held is ignored: live notices and REST answers can then arrive in any order.

use protocol::alerts::{Alert, AlertState};
use std::collections::BTreeMap;

/// Alerts kept in the history as live notices arrive, the newest ids.
pub(crate) const HISTORY_KEPT: usize = 1000;

fn stage(state: AlertState) -> u8 {
    match state {
        AlertState::Pending => 0,
        AlertState::Firing => 1,
        AlertState::Resolved => 2,
    }
}

fn is_open(alert: &Alert) -> bool {
    alert.state != AlertState::Resolved
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Alerts {
    open: BTreeMap<i64, Alert>,
    history: BTreeMap<i64, Alert>,
    /// Counts changes applied, so a fetched open set cannot drop an alert changed meanwhile.
    changes: u64,
    /// For each open alert, the value of `changes` when it last changed.
    changed_at: BTreeMap<i64, u64>,
}

impl Alerts {
    /// Takes a live notice: the alert as it is now, unless what is held is further along.
    pub(crate) fn apply(&mut self, alert: Alert) {
        self.take(alert);
        while self.history.len() > HISTORY_KEPT {
            self.history.pop_first();
        }
    }

    fn take(&mut self, alert: Alert) {
        let held = self.history.get(&alert.id).or_else(|| self.open.get(&alert.id));
        if held.is_some_and(|h| stage(h.state) > stage(alert.state)) {
            return;
        }
        self.changes += 1;
        if is_open(&alert) {
            self.open.insert(alert.id, alert.clone());
            self.changed_at.insert(alert.id, self.changes);
        } else {
            self.open.remove(&alert.id);
            self.changed_at.remove(&alert.id);
        }
        self.history.insert(alert.id, alert);
    }

    /// The value to pass to [`Alerts::set_open`] for a fetch that starts now.
    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    /// Takes `GET /api/alerts?state=open` as asked when `asked_at` was [`Alerts::changes`]: open
    /// alerts it leaves out resolved during a gap, unless they changed after the question.
    pub(crate) fn set_open(&mut self, list: Vec<Alert>, asked_at: u64) {
        let listed: Vec<i64> = list.iter().map(|a| a.id).collect();
        let changed_at = &self.changed_at;
        self.open.retain(|id, _| {
            listed.contains(id) || changed_at.get(id).is_some_and(|c| *c > asked_at)
        });
        self.changed_at.retain(|id, _| self.open.contains_key(id));
        for alert in list {
            self.take(alert);
        }
    }

    /// Takes fetched history pages; they are kept past [`HISTORY_KEPT`], since the user asked
    /// for them, until live notices push them out.
    pub(crate) fn extend(&mut self, alerts: Vec<Alert>) {
        for alert in alerts {
            self.take(alert);
        }
    }

    /// Open alerts, the most severe and then the newest first; of one agent when given.
    pub(crate) fn open(&self, agent_id: Option<&str>) -> Vec<Alert> {
        let mut list: Vec<Alert> = self
            .open
            .values()
            .filter(|a| agent_id.is_none_or(|id| a.agent_id == id))
            .cloned()
            .collect();
        list.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.id.cmp(&a.id)));
        list
    }

    /// How many alerts fire on `agent_id`.
    pub(crate) fn firing_on(&self, agent_id: &str) -> usize {
        self.open
            .values()
            .filter(|a| a.agent_id == agent_id && a.state == AlertState::Firing)
            .count()
    }

    /// (firing, pending) over the fleet.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let firing = self.open.values().filter(|a| a.state == AlertState::Firing).count();
        (firing, self.open.len() - firing)
    }

    /// Every alert held, newest first.
    pub(crate) fn history(&self) -> Vec<Alert> {
        self.history.values().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::alert;

    #[test]
    fn alerts_move_forward_only() {
        let mut alerts = Alerts::default();
        alerts.apply(alert(1, "pc-1", AlertState::Firing));
        // A late copy from before it fired changes nothing.
        alerts.apply(alert(1, "pc-1", AlertState::Pending));
        assert_eq!(alerts.open(None)[0].state, AlertState::Firing);
        alerts.apply(alert(1, "pc-1", AlertState::Resolved));
        assert!(alerts.open(None).is_empty());
        alerts.apply(alert(1, "pc-1", AlertState::Firing));
        assert!(alerts.open(None).is_empty(), "a resolved alert stays resolved");
        assert_eq!(alerts.history()[0].state, AlertState::Resolved);
    }

    #[test]
    fn open_alerts_are_counted_per_agent_and_sorted_by_severity() {
        let mut alerts = Alerts::default();
        alerts.apply(alert(1, "pc-1", AlertState::Firing));
        alerts.apply(alert(2, "pc-1", AlertState::Pending));
        let critical = Alert {
            severity: protocol::alerts::Severity::Critical,
            ..alert(3, "pc-2", AlertState::Firing)
        };
        alerts.apply(critical);
        assert_eq!(alerts.firing_on("pc-1"), 1);
        assert_eq!(alerts.firing_on("pc-3"), 0);
        assert_eq!(alerts.counts(), (2, 1));
        let ids: Vec<i64> = alerts.open(None).iter().map(|a| a.id).collect();
        assert_eq!(ids, [3, 2, 1]);
        assert_eq!(alerts.open(Some("pc-1")).len(), 2);
    }

    #[test]
    fn a_fetched_open_set_drops_what_resolved_in_a_gap_but_not_what_changed_since() {
        let mut alerts = Alerts::default();
        alerts.apply(alert(1, "pc-1", AlertState::Firing));
        alerts.apply(alert(2, "pc-1", AlertState::Firing));
        let asked = alerts.changes();
        // Raised live while the answer was on its way.
        alerts.apply(alert(3, "pc-2", AlertState::Pending));
        alerts.set_open(
            vec![alert(2, "pc-1", AlertState::Firing), alert(4, "pc-3", AlertState::Firing)],
            asked,
        );
        let ids: Vec<i64> = alerts.open(None).iter().map(|a| a.id).collect();
        assert_eq!(ids, [4, 3, 2]);
        // The dropped one stays in the history, as it was last seen.
        assert_eq!(alerts.history().len(), 4);
    }

    #[test]
    fn history_is_newest_first_and_bounded_by_live_notices() {
        let mut alerts = Alerts::default();
        let n = HISTORY_KEPT as i64 + 5;
        alerts.extend((2..=n).map(|i| alert(i, "pc-1", AlertState::Resolved)).collect());
        // Paging back keeps every page asked for.
        assert_eq!(alerts.history().len(), HISTORY_KEPT + 4);
        alerts.apply(alert(n + 1, "pc-1", AlertState::Firing));
        let history = alerts.history();
        assert_eq!(history.len(), HISTORY_KEPT);
        assert_eq!(history[0].id, n + 1);
        assert_eq!(history.last().unwrap().id, n + 2 - HISTORY_KEPT as i64);
    }
}
