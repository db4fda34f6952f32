//! Watched services: where the list comes from, which of them are watched, and the notices of
//! what changed between two checks.

use super::WatchError;
use protocol::{Limits, Notice, NoticeKind, NoticeLevel, Service, ServiceState, StartMode};
use std::collections::HashMap;

/// Which services are watched (`SERVICES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceChoice {
    /// None: `none`.
    Off,
    /// Those that start with the system: Windows' automatic ones, systemd's enabled units.
    Automatic,
    /// These, by key name; a systemd unit may be named without `.service`.
    Named(Vec<String>),
}

/// Where the list of services comes from: the service manager in production, a script in tests.
pub(crate) trait ServiceSource: Send {
    /// Every service the system has, each with its state and, where known, its start mode.
    fn list(&mut self) -> Result<Vec<Service>, WatchError>;
}

/// The system's service manager; `None` where there is none to ask (macOS, or Linux without
/// systemd running, e.g. in a container), which is logged once.
#[cfg(windows)]
pub(crate) fn system_source() -> Option<Box<dyn ServiceSource>> {
    Some(Box::new(super::scm::Scm::default()))
}

/// The system's service manager; `None` where there is none to ask (macOS, or Linux without
/// systemd running, e.g. in a container), which is logged once.
#[cfg(target_os = "linux")]
pub(crate) fn system_source() -> Option<Box<dyn ServiceSource>> {
    super::systemctl::Systemctl::open().map(|s| Box::new(s) as Box<dyn ServiceSource>)
}

/// The system's service manager; `None` where there is none to ask (macOS, or Linux without
/// systemd running, e.g. in a container), which is logged once.
#[cfg(not(any(windows, target_os = "linux")))]
pub(crate) fn system_source() -> Option<Box<dyn ServiceSource>> {
    tracing::info!("services are watched on Windows and on Linux with systemd only");
    None
}

/// `name` as `wanted` names it: the same without regard to case, or a systemd unit named
/// without its `.service`.
fn is_named(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
        || name.strip_suffix(".service").is_some_and(|stem| stem.eq_ignore_ascii_case(wanted))
}

/// The watched services of `all`, by name, at most as many as a batch carries.
pub(crate) fn select(all: Vec<Service>, choice: &ServiceChoice) -> Vec<Service> {
    let mut watched: Vec<Service> = match choice {
        ServiceChoice::Off => vec![],
        ServiceChoice::Automatic => {
            all.into_iter().filter(|s| s.start == Some(StartMode::Auto)).collect()
        }
        ServiceChoice::Named(names) => all
            .into_iter()
            .filter(|s| names.iter().any(|wanted| is_named(&s.name, wanted)))
            .collect(),
    };
    watched.sort_by(|a, b| a.name.cmp(&b.name));
    watched.dedup_by(|a, b| a.name == b.name);
    watched.truncate(Limits::MAX_SERVICES);
    watched
}

/// One notice per watched service whose state differs between two checks, stamped `ts`: an
/// error when it failed, a warning when one that starts with the system stopped running, for
/// the record otherwise. A service new to the list, or gone from it, is in the list sent and
/// makes no notice.
pub(crate) fn changes(before: &[Service], after: &[Service], ts: &str) -> Vec<Notice> {
    let was: HashMap<&str, ServiceState> =
        before.iter().map(|s| (s.name.as_str(), s.state)).collect();
    after
        .iter()
        .filter_map(|s| {
            let was = *was.get(s.name.as_str()).filter(|&&w| w != s.state)?;
            let level = if s.state == ServiceState::Failed {
                NoticeLevel::Error
            } else if was == ServiceState::Running && s.start == Some(StartMode::Auto) {
                NoticeLevel::Warning
            } else {
                NoticeLevel::Info
            };
            Some(Notice {
                ts: ts.to_owned(),
                kind: NoticeKind::Service,
                level,
                source: s.name.clone(),
                code: None,
                message: format!("{} (was {})", s.state.as_str(), was.as_str()),
            })
        })
        .collect()
}

/// A service as the backend takes it: names cleaned and clipped; `None` without a name.
pub(crate) fn service(
    name: &str,
    display_name: &str,
    state: ServiceState,
    start: Option<StartMode>,
) -> Option<Service> {
    Some(Service {
        name: super::clip(name, Limits::MAX_SOURCE_CHARS)?,
        display_name: super::clip(display_name, Limits::MAX_SOURCE_CHARS),
        state,
        start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServiceState::{Failed, Running, Starting, Stopped};

    fn svc(name: &str, state: ServiceState, start: Option<StartMode>) -> Service {
        Service { name: name.into(), display_name: None, state, start }
    }

    #[test]
    fn the_watched_are_the_automatic_or_the_named_ones_sorted() {
        let all = vec![
            svc("sshd.service", Running, Some(StartMode::Auto)),
            svc("cups.service", Stopped, Some(StartMode::Manual)),
            svc("Spooler", Running, Some(StartMode::Auto)),
            svc("nginx.service", Failed, None),
        ];
        let names = |v: Vec<Service>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(select(all.clone(), &ServiceChoice::Automatic)),
            ["Spooler", "sshd.service"]
        );
        let named = ServiceChoice::Named(vec!["spooler".into(), "nginx".into(), "absent".into()]);
        assert_eq!(names(select(all.clone(), &named)), ["Spooler", "nginx.service"]);
        assert!(select(all, &ServiceChoice::Off).is_empty());
        let many = vec![svc("x", Running, Some(StartMode::Auto)); 3];
        assert_eq!(select(many, &ServiceChoice::Automatic).len(), 1, "each name once");
    }

    #[test]
    fn each_change_of_state_is_one_notice_of_its_level() {
        let auto = Some(StartMode::Auto);
        let before = [
            svc("a", Running, auto),
            svc("b", Running, Some(StartMode::Manual)),
            svc("c", Running, auto),
            svc("d", Stopped, auto),
            svc("e", Running, auto),
            svc("gone", Running, auto),
        ];
        let after = [
            svc("a", Stopped, auto),
            svc("b", Stopped, Some(StartMode::Manual)),
            svc("c", Failed, auto),
            svc("d", Starting, auto),
            svc("e", Running, auto),
            svc("new", Failed, auto),
        ];
        let got: Vec<(String, NoticeLevel, String)> =
            changes(&before, &after, "2025-11-12T12:00:00Z")
                .into_iter()
                .inspect(|n| {
                    assert_eq!(
                        (n.kind, n.code, n.ts.as_str()),
                        (NoticeKind::Service, None, "2025-11-12T12:00:00Z")
                    )
                })
                .map(|n| (n.source, n.level, n.message))
                .collect();
        let want = [
            ("a", NoticeLevel::Warning, "stopped (was running)"),
            ("b", NoticeLevel::Info, "stopped (was running)"),
            ("c", NoticeLevel::Error, "failed (was running)"),
            ("d", NoticeLevel::Info, "starting (was stopped)"),
        ];
        let want: Vec<_> =
            want.iter().map(|(s, l, m)| (s.to_string(), *l, m.to_string())).collect();
        assert_eq!(got, want);
        assert!(changes(&after, &after, "t").is_empty());
    }

    #[test]
    fn names_are_cleaned_and_a_nameless_service_dropped() {
        let s = service(" Spooler\u{0}", "Print\tSpooler ", Running, None).unwrap();
        assert_eq!(
            (s.name.as_str(), s.display_name.as_deref()),
            ("Spooler", Some("Print Spooler"))
        );
        assert_eq!(service("x", " ", Running, None).unwrap().display_name, None);
        assert_eq!(service(&"n".repeat(300), "", Running, None).unwrap().name.len(), 256);
        assert!(service("\u{7}", "x", Running, None).is_none());
    }
}
