//! The Windows Event Log through wevtapi: per channel, a query for the entries of level
//! critical, error or warning past the last record read, each rendered as XML (see
//! [`super::event_xml`]) and its message formatted by its provider.

use super::bookmarks::Bookmarks;
use super::event_xml::{self, EventRecord};
use super::logs::{LogSource, is_wanted, skipped};
use super::{WatchError, last_error, wide};
use protocol::Notice;
use std::collections::{HashMap, HashSet};
use windows_sys::Win32::System::EventLog::{
    EVT_HANDLE, EvtClose, EvtFormatMessage, EvtFormatMessageEvent, EvtNext,
    EvtOpenPublisherMetadata, EvtQuery, EvtQueryChannelPath, EvtQueryForwardDirection,
    EvtQueryReverseDirection, EvtRender, EvtRenderEventXml,
};

const ERROR_INSUFFICIENT_BUFFER: i32 = 122;
const ERROR_NO_MORE_ITEMS: i32 = 259;
const ERROR_EVT_CHANNEL_NOT_FOUND: i32 = 15007;
/// Entries looked at past `max` in one check, only to count them and move past: a channel
/// flooded for days is caught up with over a few checks instead of in one long one.
const SCAN_LIMIT: u64 = 10_000;
/// Publishers whose metadata is kept open; a channel rarely has more than a few dozen.
const PUBLISHERS_KEPT: usize = 128;

/// A wevtapi handle, closed when dropped.
#[derive(Debug)]
struct Handle(EVT_HANDLE);

impl Drop for Handle {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: a handle wevtapi returned, closed once, here.
        unsafe { EvtClose(self.0) };
    }
}

fn last_code() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

/// The entries of `channel` matching `xpath`, in the direction `flags` says.
#[allow(unsafe_code)]
fn query(channel: &str, xpath: &str, flags: u32) -> Result<Handle, WatchError> {
    let (channel, xpath) = (wide(channel), wide(xpath));
    // SAFETY: NUL-terminated strings that outlive the call; 0 is the local session.
    let h = unsafe { EvtQuery(0, channel.as_ptr(), xpath.as_ptr(), EvtQueryChannelPath | flags) };
    if h == 0 { Err(last_error("EvtQuery")) } else { Ok(Handle(h)) }
}

/// The next entries of a query, at most `N`; none at its end.
#[allow(unsafe_code)]
fn next<const N: usize>(results: &Handle) -> Result<Vec<Handle>, WatchError> {
    let mut handles = [0 as EVT_HANDLE; N];
    let mut returned = 0u32;
    // SAFETY: room for N handles, and a count to write to; a query's results need no wait,
    // the timeout only bounds a slow one.
    let ok = unsafe { EvtNext(results.0, N as u32, handles.as_mut_ptr(), 1000, 0, &mut returned) };
    if ok == 0 {
        return if last_code() == Some(ERROR_NO_MORE_ITEMS) {
            Ok(vec![])
        } else {
            Err(last_error("EvtNext"))
        };
    }
    Ok(handles[..returned as usize].iter().map(|&h| Handle(h)).collect())
}

/// Calls `fill(buffer, capacity, used)` with a growing buffer of UTF-16 units until it fits;
/// `units` says whether `used` counts units (`EvtFormatMessage`) or bytes (`EvtRender`).
fn with_buffer(units: bool, mut fill: impl FnMut(&mut [u16], &mut u32) -> bool) -> Option<String> {
    let mut buffer = vec![0u16; 2048];
    for _ in 0..3 {
        let mut used = 0u32;
        if fill(&mut buffer, &mut used) {
            let len = if units { used as usize } else { used as usize / 2 };
            let text = &buffer[..len.min(buffer.len())];
            let text = text.split(|&c| c == 0).next().unwrap_or_default();
            return Some(String::from_utf16_lossy(text));
        }
        if last_code() != Some(ERROR_INSUFFICIENT_BUFFER) {
            return None;
        }
        let want = if units { used as usize } else { (used as usize).div_ceil(2) };
        buffer.resize(want.max(buffer.len() * 2), 0);
    }
    None
}

/// The entry as XML.
#[allow(unsafe_code)]
fn render(event: &Handle) -> Option<String> {
    with_buffer(false, |buffer, used| {
        let bytes = u32::try_from(buffer.len() * 2).unwrap_or(u32::MAX);
        let mut properties = 0u32;
        // SAFETY: the buffer is writable for `bytes` bytes; no render context for XML.
        let ok = unsafe {
            EvtRender(
                0,
                event.0,
                EvtRenderEventXml,
                bytes,
                buffer.as_mut_ptr().cast(),
                used,
                &mut properties,
            )
        };
        ok != 0
    })
}

/// The entry's message as its provider words it.
#[allow(unsafe_code)]
fn format(publisher: &Handle, event: &Handle) -> Option<String> {
    with_buffer(true, |buffer, used| {
        let units = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        // SAFETY: the buffer is writable for `units` UTF-16 units; no values are passed in.
        let ok = unsafe {
            EvtFormatMessage(
                publisher.0,
                event.0,
                0,
                0,
                std::ptr::null(),
                EvtFormatMessageEvent,
                units,
                buffer.as_mut_ptr(),
                used,
            )
        };
        ok != 0
    })
}

#[allow(unsafe_code)]
fn open_publisher(name: &str) -> Option<Handle> {
    let name = wide(name);
    // SAFETY: a NUL-terminated name; local session, no archived log, the user's locale.
    let h = unsafe { EvtOpenPublisherMetadata(0, name.as_ptr(), std::ptr::null(), 0, 0) };
    (h != 0).then_some(Handle(h))
}

/// The newest record id of `channel`, 0 when it is empty.
fn newest(channel: &str) -> Result<u64, WatchError> {
    let results = query(channel, "*", EvtQueryReverseDirection)?;
    let id = next::<1>(&results)?.first().and_then(render).and_then(|xml| event_xml::parse(&xml));
    Ok(id.map_or(0, |r| r.record_id))
}

/// The channels being read and where each stands.
#[derive(Debug)]
pub(crate) struct EventLog {
    channels: Vec<String>,
    /// `EVENT_SOURCES`: the providers whose entries are sent; empty sends every one.
    sources: Vec<String>,
    bookmarks: Bookmarks,
    /// Publisher metadata by provider name; `None` for one that cannot be opened.
    publishers: HashMap<String, Option<Handle>>,
    /// Channels whose last reading failed, so that a lasting failure is said once.
    failing: HashSet<String>,
}

impl EventLog {
    /// Starts each channel after its bookmark, or at its newest entry (the history before the
    /// first run is not sent). A missing channel is left out, said at WARN; `None`, said at
    /// WARN, when the Event Log cannot be queried at all.
    pub(crate) fn open(
        channels: &[String],
        sources: Vec<String>,
        mut bookmarks: Bookmarks,
    ) -> Option<Self> {
        let mut open = Vec::new();
        for channel in channels {
            let newest = match newest(channel) {
                Ok(id) => id,
                Err(WatchError::Windows { source, .. })
                    if source.raw_os_error() == Some(ERROR_EVT_CHANNEL_NOT_FOUND) =>
                {
                    tracing::warn!(channel = %channel, "no such Event Log channel; it is not read");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the Event Log cannot be read here: no log notices");
                    return None;
                }
            };
            // A bookmark past the newest entry means the log was cleared since: all is new.
            let start = match bookmarks.get(channel) {
                Some(id) if id <= newest => id,
                Some(_) => 0,
                None => newest,
            };
            bookmarks.set(channel, start);
            open.push(channel.clone());
        }
        if let Err(e) = bookmarks.save() {
            tracing::warn!(error = %e, "could not keep the Event Log bookmarks");
        }
        (!open.is_empty()).then(|| Self {
            channels: open,
            sources,
            bookmarks,
            publishers: HashMap::new(),
            failing: HashSet::new(),
        })
    }

    fn message(&mut self, record: &EventRecord, event: &Handle) -> Option<String> {
        if self.publishers.len() >= PUBLISHERS_KEPT {
            self.publishers.clear();
        }
        let publisher = self
            .publishers
            .entry(record.provider.clone())
            .or_insert_with(|| open_publisher(&record.provider));
        format(publisher.as_ref()?, event)
    }

    fn read_channel(
        &mut self,
        channel: &str,
        max: usize,
        now: &str,
    ) -> Result<Vec<Notice>, WatchError> {
        let last = self.bookmarks.get(channel).unwrap_or(0);
        let xpath =
            format!("*[System[(Level=1 or Level=2 or Level=3) and EventRecordID > {last}]]");
        let results = query(channel, &xpath, EvtQueryForwardDirection)?;
        let (mut notices, mut skipped_count, mut newest) = (Vec::new(), 0u64, last);
        'read: loop {
            let batch = next::<32>(&results)?;
            if batch.is_empty() {
                break;
            }
            for event in batch {
                let Some(record) = render(&event).and_then(|xml| event_xml::parse(&xml)) else {
                    continue;
                };
                newest = newest.max(record.record_id);
                // Read past, not counted: the bookmark moves on over what is not wanted.
                if !is_wanted(&self.sources, &record.provider) {
                    continue;
                }
                if notices.len() < max {
                    let message = self.message(&record, &event);
                    notices.extend(event_xml::notice(&record, message.as_deref(), now));
                } else {
                    skipped_count += 1;
                    if skipped_count >= SCAN_LIMIT {
                        break 'read;
                    }
                }
            }
        }
        if skipped_count > 0 {
            notices.push(skipped(channel, skipped_count, max, now));
        }
        self.bookmarks.set(channel, newest);
        Ok(notices)
    }
}

impl LogSource for EventLog {
    fn read(&mut self, max: usize) -> Vec<Notice> {
        let now = crate::collect::now_iso();
        let mut notices = Vec::new();
        for channel in self.channels.clone() {
            match self.read_channel(&channel, max, &now) {
                Ok(found) => {
                    if self.failing.remove(&channel) {
                        tracing::info!(channel = %channel, "the Event Log channel can be read again");
                    }
                    notices.extend(found);
                }
                Err(e) => {
                    if self.failing.insert(channel.clone()) {
                        tracing::warn!(channel = %channel, error = %e, "could not read the Event Log channel; trying again at each check");
                    }
                }
            }
        }
        if let Err(e) = self.bookmarks.save() {
            tracing::warn!(error = %e, "could not keep the Event Log bookmarks");
        }
        notices
    }
}
