//! What the agent watches beside the tick's figures: the state of services and the system's log
//! (the Windows Event Log). Each check enumerates every service or starts a subprocess, so it
//! runs every `WATCH_SECONDS`, not every tick, and turns what changed into notices.

#[cfg(any(windows, test))]
mod bookmarks;
#[cfg(any(windows, test))]
mod event_xml;
mod logs;
#[cfg(any(windows, test))]
mod scm;
mod services;
#[cfg(any(target_os = "linux", test))]
mod systemctl;
#[cfg(windows)]
mod wevt;

pub(crate) use services::ServiceChoice;

use crate::collect::now_iso;
use crate::settings::Settings;
use logs::LogSource;
use protocol::{Limits, Notice, NoticeKind, NoticeLevel, Service};
use services::ServiceSource;
use std::time::{Duration, Instant};

/// Why a check found nothing this time; the next check tries again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchError {
    /// A command could not be started or did not finish in time.
    #[cfg(any(target_os = "linux", test))]
    #[error("running {command}: {reason}")]
    Command {
        /// The program, `systemctl`.
        command: &'static str,
        /// The I/O error or the time it took.
        reason: String,
    },
    /// A command ran and failed.
    #[cfg(any(target_os = "linux", test))]
    #[error("{command} exited with {status}: {stderr}")]
    Failed {
        /// The program, `systemctl`.
        command: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The start of what it wrote to stderr.
        stderr: String,
    },
    /// A Windows call failed.
    #[cfg(windows)]
    #[error("{call} failed: {source}")]
    Windows {
        /// The function, `EnumServicesStatusExW`.
        call: &'static str,
        /// The error it left, as the system words it.
        source: std::io::Error,
    },
}

/// `text` as the NUL-terminated UTF-16 that Windows calls take.
#[cfg(windows)]
fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

/// The error the Windows `call` just left.
#[cfg(windows)]
fn last_error(call: &'static str) -> WatchError {
    WatchError::Windows { call, source: std::io::Error::last_os_error() }
}

/// The service list is sent again after this long even when nothing changed, so the backend's
/// copy never grows older than this.
const RESEND_SERVICES: Duration = Duration::from_secs(3600);

/// What one tick's check found: the watched services when they are to be sent, and the notices
/// of what happened since the previous check.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub services: Option<Vec<Service>>,
    pub notices: Vec<Notice>,
}

/// The services and logs being watched, and what the previous check saw.
pub(crate) struct Watch {
    every: Duration,
    /// When the next check is due; `None` before the first, which runs at the first tick.
    next: Option<Instant>,
    services: Option<WatchedServices>,
    logs: Option<Box<dyn LogSource>>,
    log_max: usize,
}

struct WatchedServices {
    source: Box<dyn ServiceSource>,
    choice: ServiceChoice,
    /// The list last seen, and when it was last sent.
    last: Option<(Vec<Service>, Instant)>,
    failing: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("every", &self.every)
            .field("services", &self.services.as_ref().map(|s| &s.choice))
            .field("logs", &self.logs.is_some())
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// The system's sources, as the settings choose; a source the system lacks is left out
    /// (and said so once in the log).
    pub(crate) fn from_settings(settings: &Settings) -> Self {
        let services = match &settings.services {
            ServiceChoice::Off => None,
            choice => services::system_source().map(|source| WatchedServices {
                source,
                choice: choice.clone(),
                last: None,
                failing: false,
            }),
        };
        let logs = if settings.event_logs.is_empty() {
            None
        } else {
            logs::system_source(&settings.event_logs, &settings.event_sources, &settings.data_dir)
        };
        Self::new(settings.watch_interval, services, logs, settings.event_log_max)
    }

    fn new(
        every: Duration,
        services: Option<WatchedServices>,
        logs: Option<Box<dyn LogSource>>,
        log_max: usize,
    ) -> Self {
        Self { every, next: None, services, logs, log_max }
    }

    /// Checks when a check is due at `now`, otherwise finds nothing.
    pub(crate) fn check(&mut self, now: Instant) -> Found {
        if self.next.is_some_and(|next| now < next) {
            return Found::default();
        }
        self.next = Some(now + self.every);
        let ts = now_iso();
        let mut found = Found::default();
        if let Some(watched) = &mut self.services {
            watched.check(now, &ts, &mut found);
        }
        if let Some(source) = &mut self.logs {
            found.notices.extend(source.read(self.log_max));
        }
        cap_notices(&mut found.notices, &ts);
        found
    }
}

impl WatchedServices {
    fn check(&mut self, now: Instant, ts: &str, found: &mut Found) {
        let all = match self.source.list() {
            Ok(all) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!("services can be listed again");
                }
                all
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(error = %e, "could not list the services; trying again at each check");
                }
                return;
            }
        };
        let current = services::select(all, &self.choice);
        let (changed, sent) = match self.last.take() {
            None => (true, now),
            Some((before, sent)) => {
                found.notices.extend(services::changes(&before, &current, ts));
                (before != current, sent)
            }
        };
        let send = changed || now.duration_since(sent) >= RESEND_SERVICES;
        let sent = if send { now } else { sent };
        if send {
            found.services = Some(current.clone());
        }
        self.last = Some((current, sent));
    }
}

/// Text the backend takes as a name or source: control characters as blanks, trimmed, at most
/// `max` characters; `None` when nothing is left.
pub(crate) fn clip(text: &str, max: usize) -> Option<String> {
    let cleaned: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let clipped: String = cleaned.trim().chars().take(max).collect();
    let clipped = clipped.trim_end();
    (!clipped.is_empty()).then(|| clipped.to_owned())
}

/// A message the backend takes: line breaks and tabs kept (Windows' `\r\n` as `\n`), other
/// control characters dropped, at most [`Limits::MAX_MESSAGE_CHARS`] characters.
#[cfg(any(windows, test))]
pub(crate) fn clean_message(text: &str) -> String {
    let kept = text.chars().filter(|&c| !c.is_control() || c == '\n' || c == '\t');
    let kept: String = kept.collect();
    kept.trim().chars().take(Limits::MAX_MESSAGE_CHARS).collect::<String>().trim_end().to_owned()
}

/// At most what one batch may carry: the first ones, and a warning saying how many more there
/// were in place of the last.
fn cap_notices(notices: &mut Vec<Notice>, ts: &str) {
    if notices.len() <= Limits::MAX_NOTICES {
        return;
    }
    let skipped = notices.len() - (Limits::MAX_NOTICES - 1);
    notices.truncate(Limits::MAX_NOTICES - 1);
    tracing::warn!(skipped, "more notices than a batch carries; the newest were left out");
    notices.push(Notice {
        ts: ts.to_owned(),
        kind: NoticeKind::Log,
        level: NoticeLevel::Warning,
        source: "agent".into(),
        code: None,
        message: format!("{skipped} more notices of this check were left out"),
    });
}

#[cfg(test)]
mod tests;
