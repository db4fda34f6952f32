//! Connection bookkeeping for the live feed: reconnect back-off, the gap-fill walk and the inbox
//! that coalesces WebSocket messages between renders. Plain Rust; `api` drives it.

use protocol::{EventRow, LiveMessage};
use std::cell::RefCell;
use std::rc::Rc;

/// What the connection indicator shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConnState {
    Connecting,
    Live,
    /// Lost; the next try is at `retry_at_ms` (browser clock).
    Reconnecting {
        attempt: u32,
        retry_at_ms: f64,
    },
}

/// Waits 1, 2, 4 … seconds between tries, at most 30, and starts over after a success.
#[derive(Debug, Default, Clone)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(crate) const MAX_MS: u32 = 30_000;

    pub(crate) fn next_delay_ms(&mut self) -> u32 {
        let delay = 1000u32.saturating_mul(1 << self.attempt.min(5)).min(Self::MAX_MS);
        self.attempt += 1;
        delay
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Walking `/api/events` pages newest first after a reconnect, until reaching rows already seen.
#[derive(Debug, Clone)]
pub(crate) struct GapFill {
    /// The highest id seen before the connection dropped.
    after_id: i64,
    pages_left: u32,
    rows: Vec<EventRow>,
    next_before: Option<i64>,
    done: bool,
}

impl GapFill {
    /// At most `max_pages` pages are fetched: a long outage of a big fleet is fetched in part,
    /// newest first, rather than stalling the page.
    pub(crate) fn new(after_id: i64, max_pages: u32) -> Self {
        Self { after_id, pages_left: max_pages, rows: Vec::new(), next_before: None, done: false }
    }

    /// The `before_id` for the next request (`None` for the newest page), or `None` when done.
    pub(crate) fn next_request(&self) -> Option<Option<i64>> {
        (!self.done && self.pages_left > 0).then_some(self.next_before)
    }

    /// Takes one page (newest first) and decides whether another is needed.
    pub(crate) fn take_page(&mut self, page: Vec<EventRow>, limit: usize) {
        self.pages_left = self.pages_left.saturating_sub(1);
        let full = page.len() >= limit;
        let oldest = page.last().map(|r| r.id);
        let reached_seen = oldest.is_none_or(|id| id <= self.after_id + 1);
        self.rows.extend(page.into_iter().filter(|r| r.id > self.after_id));
        self.next_before = oldest;
        self.done = !full || reached_seen;
    }

    /// The missed rows, oldest first, as live messages.
    pub(crate) fn into_messages(mut self) -> Vec<LiveMessage> {
        self.rows.sort_by_key(|r| r.id);
        self.rows.dedup_by_key(|r| r.id);
        self.rows.into_iter().map(|r| LiveMessage::Row(Box::new(r))).collect()
    }
}

/// Messages received since the last render; the flusher takes them all at once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Inbox(Rc<RefCell<Vec<LiveMessage>>>);

impl Inbox {
    pub(crate) fn push(&self, message: LiveMessage) {
        self.0.borrow_mut().push(message);
    }

    pub(crate) fn extend(&self, messages: impl IntoIterator<Item = LiveMessage>) {
        self.0.borrow_mut().extend(messages);
    }

    pub(crate) fn take(&self) -> Vec<LiveMessage> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{NOW_MS, metric};

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u32> = (0..8).map(|_| b.next_delay_ms()).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
        assert_eq!(b.attempt(), 8);
        b.reset();
        assert_eq!(b.next_delay_ms(), 1000);
    }

    fn page(ids: std::ops::RangeInclusive<i64>) -> Vec<EventRow> {
        ids.rev().map(|i| metric(i, "pc-1", NOW_MS, 0.1)).collect()
    }

    #[test]
    fn gap_fill_walks_back_to_the_last_seen_row() {
        let mut gap = GapFill::new(100, 10);
        assert_eq!(gap.next_request(), Some(None));
        gap.take_page(page(151..=250), 100);
        assert_eq!(gap.next_request(), Some(Some(151)));
        gap.take_page(page(51..=150), 100);
        assert_eq!(gap.next_request(), None);
        let ids: Vec<i64> = gap
            .into_messages()
            .into_iter()
            .map(|m| match m {
                LiveMessage::Row(r) => r.id,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ids, (101..=250).collect::<Vec<_>>());
    }

    #[test]
    fn gap_fill_stops_at_a_short_page_or_the_page_budget() {
        let mut gap = GapFill::new(0, 10);
        gap.take_page(page(1..=30), 100);
        assert_eq!(gap.next_request(), None);
        let mut gap = GapFill::new(0, 2);
        gap.take_page(page(901..=1000), 100);
        gap.take_page(page(801..=900), 100);
        assert_eq!(gap.next_request(), None);
        assert_eq!(gap.into_messages().len(), 200);
    }

    #[test]
    fn the_inbox_hands_over_everything_once() {
        let inbox = Inbox::default();
        let writer = inbox.clone();
        for i in 0..50 {
            writer.push(LiveMessage::Row(Box::new(metric(i, "pc-1", NOW_MS, 0.1))));
        }
        assert_eq!(inbox.take().len(), 50);
        assert!(inbox.take().is_empty());
    }
}
