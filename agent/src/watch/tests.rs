//! The check's timing and what it sends, on scripted sources.

use super::*;
use protocol::{ServiceState, StartMode};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Lists from a script, the last one again once the script is done; an empty script entry
/// is a failed listing.
struct Scripted(Arc<Mutex<VecDeque<Option<Vec<Service>>>>>, Vec<Service>);

impl ServiceSource for Scripted {
    fn list(&mut self) -> Result<Vec<Service>, WatchError> {
        match self.0.lock().unwrap().pop_front() {
            Some(Some(list)) => {
                self.1 = list.clone();
                Ok(list)
            }
            Some(None) => Err(WatchError::Command { command: "test", reason: "scripted".into() }),
            None => Ok(self.1.clone()),
        }
    }
}

/// `n` log entries at each read, counting the reads.
struct Flood(usize, Arc<Mutex<usize>>);

impl LogSource for Flood {
    fn read(&mut self, max: usize) -> Vec<Notice> {
        *self.1.lock().unwrap() += 1;
        let entry = |i: usize| Notice {
            ts: "2025-11-12T12:00:00Z".into(),
            kind: NoticeKind::Log,
            level: NoticeLevel::Error,
            source: "System/disk".into(),
            code: Some(7),
            message: format!("entry {i}"),
        };
        let mut notices: Vec<Notice> = (0..self.0.min(max)).map(entry).collect();
        if self.0 > max {
            notices.push(logs::skipped(
                "System",
                (self.0 - max) as u64,
                max,
                "2025-11-12T12:00:00Z",
            ));
        }
        notices
    }
}

fn svc(name: &str, state: ServiceState) -> Service {
    Service { name: name.into(), display_name: None, state, start: Some(StartMode::Auto) }
}

fn watch(script: Vec<Option<Vec<Service>>>, logs: Option<Box<dyn LogSource>>) -> Watch {
    let source = Scripted(Arc::new(Mutex::new(script.into())), vec![]);
    let services = WatchedServices {
        source: Box::new(source),
        choice: ServiceChoice::Automatic,
        last: None,
        failing: false,
    };
    Watch::new(Duration::from_secs(30), Some(services), logs, 20)
}

#[test]
fn the_list_goes_first_on_change_and_hourly_and_checks_wait_their_turn() {
    let running = vec![svc("a", ServiceState::Running), svc("b", ServiceState::Running)];
    let stopped = vec![svc("a", ServiceState::Stopped), svc("b", ServiceState::Running)];
    let mut w =
        watch(vec![Some(running.clone()), Some(running.clone()), Some(stopped.clone())], None);
    let t0 = Instant::now();
    let first = w.check(t0);
    assert_eq!(first.services.as_deref(), Some(&running[..]), "the first check sends the list");
    assert!(first.notices.is_empty());
    // Ticks between checks do nothing, not even ask the source.
    for s in [5, 10, 29] {
        let between = w.check(t0 + Duration::from_secs(s));
        assert!(between.services.is_none() && between.notices.is_empty());
    }
    assert!(w.check(t0 + Duration::from_secs(30)).services.is_none(), "unchanged: not sent");
    let changed = w.check(t0 + Duration::from_secs(60));
    assert_eq!(changed.services.as_deref(), Some(&stopped[..]));
    let messages: Vec<&str> = changed.notices.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(messages, ["stopped (was running)"]);
    assert_eq!(changed.notices[0].level, NoticeLevel::Warning);
    // Unchanged for an hour after it was last sent: sent again.
    let mut at = t0 + Duration::from_secs(60);
    let mut resent = None;
    while resent.is_none() {
        at += Duration::from_secs(30);
        resent = w.check(at).services;
    }
    assert_eq!(at - (t0 + Duration::from_secs(60)), RESEND_SERVICES);
}

#[test]
fn a_failed_listing_sends_nothing_and_the_next_compares_with_the_last_seen() {
    let running = vec![svc("a", ServiceState::Running)];
    let failed = vec![svc("a", ServiceState::Failed)];
    let mut w = watch(vec![None, Some(running.clone()), None, Some(failed.clone())], None);
    let t0 = Instant::now();
    assert!(w.check(t0).services.is_none());
    assert_eq!(w.check(t0 + Duration::from_secs(30)).services, Some(running));
    assert!(w.check(t0 + Duration::from_secs(60)).services.is_none());
    let found = w.check(t0 + Duration::from_secs(90));
    assert_eq!(found.services, Some(failed));
    assert_eq!(
        (found.notices[0].level, found.notices[0].message.as_str()),
        (NoticeLevel::Error, "failed (was running)")
    );
}

#[test]
fn log_entries_come_with_the_check_and_a_batch_never_carries_too_many() {
    let reads = Arc::new(Mutex::new(0));
    let mut w = watch(vec![], Some(Box::new(Flood(25, reads.clone()))));
    let t0 = Instant::now();
    let found = w.check(t0);
    assert_eq!(found.notices.len(), 21, "20 entries and the warning of 5 skipped");
    assert!(found.notices[20].message.starts_with("5 more entries"));
    w.check(t0 + Duration::from_secs(1));
    assert_eq!(*reads.lock().unwrap(), 1, "read at checks only");

    let mut many = (0..250)
        .map(|i| Notice {
            ts: "2025-11-12T12:00:00Z".into(),
            kind: NoticeKind::Service,
            level: NoticeLevel::Info,
            source: format!("s{i}"),
            code: None,
            message: "stopped (was running)".into(),
        })
        .collect();
    cap_notices(&mut many, "2025-11-12T12:00:00Z");
    assert_eq!(many.len(), Limits::MAX_NOTICES);
    assert_eq!(many[199].message, "51 more notices of this check were left out");
}

#[test]
fn text_is_cleaned_for_the_wire() {
    assert_eq!(clip("  a\u{0}b\r\n ", 256).as_deref(), Some("a b"));
    assert_eq!(clip("\u{7}", 10), None);
    assert_eq!(clip("abcdef", 3).as_deref(), Some("abc"));
    assert_eq!(clean_message(" one\r\n\ttwo\u{1b} \n"), "one\n\ttwo");
}

#[test]
fn chosen_sources_are_matched_without_case_and_none_chosen_takes_all() {
    let chosen = ["Service Control Manager".to_owned(), "MSSQLSERVER".to_owned()];
    assert!(logs::is_wanted(&chosen, "service control manager"));
    assert!(logs::is_wanted(&chosen, "MSSQLSERVER"));
    assert!(!logs::is_wanted(&chosen, "Application Error"));
    assert!(logs::is_wanted(&[], "Application Error"));
}
