//! The system's log as notices: on Windows the Event Log's warnings, errors and critical
//! entries. Elsewhere there is none yet: the systemd journal would cost a `journalctl` per
//! check on top of `systemctl`'s, which the agent's footprint has no room for.

use protocol::Notice;
use std::path::Path;

/// Where log entries come from: the Event Log in production, a script in tests.
pub(crate) trait LogSource: Send {
    /// The entries of level warning or worse since the previous call, oldest first, at most
    /// `max` per log, and for a log that had more, one warning saying how many were skipped. A
    /// log that cannot be read gives none this time; the source says so in the agent's log.
    fn read(&mut self, max: usize) -> Vec<Notice>;
}

/// The Event Log's `channels`, the entries of `sources` (every one when empty), reading on from
/// where the last run stopped (kept in `data_dir`); `None`, said once at WARN, where it cannot
/// be read (Wine implements none of it).
#[cfg(windows)]
pub(crate) fn system_source(
    channels: &[String],
    sources: &[String],
    data_dir: &Path,
) -> Option<Box<dyn LogSource>> {
    let bookmarks = super::bookmarks::Bookmarks::load(data_dir.join(BOOKMARKS_FILE));
    let log = super::wevt::EventLog::open(channels, sources.to_vec(), bookmarks)?;
    Some(Box::new(log))
}

/// `None` outside Windows: the system log is not read there.
#[cfg(not(windows))]
pub(crate) fn system_source(
    _channels: &[String],
    _sources: &[String],
    _data_dir: &Path,
) -> Option<Box<dyn LogSource>> {
    None
}

/// Whether an entry written by `provider` is sent: `sources` name the wanted ones, without
/// regard to case as Windows treats them; none means every one.
#[cfg(any(windows, test))]
pub(crate) fn is_wanted(sources: &[String], provider: &str) -> bool {
    sources.is_empty() || sources.iter().any(|s| s.eq_ignore_ascii_case(provider.trim()))
}

/// Where the last record read of each channel is kept, in the data folder.
#[cfg(windows)]
const BOOKMARKS_FILE: &str = "event-log.json";

/// The warning that stands for `skipped` entries of `channel` left out of one check.
#[cfg(any(windows, test))]
pub(crate) fn skipped(channel: &str, skipped: u64, max: usize, now: &str) -> Notice {
    use protocol::{Limits, NoticeKind, NoticeLevel};
    Notice {
        ts: now.to_owned(),
        kind: NoticeKind::Log,
        level: NoticeLevel::Warning,
        source: super::clip(channel, Limits::MAX_SOURCE_CHARS)
            .unwrap_or_else(|| "Event Log".into()),
        code: None,
        message: format!(
            "{skipped} more entries of level warning or worse were skipped: at most {max} are \
             sent per check (EVENT_LOG_MAX)"
        ),
    }
}
