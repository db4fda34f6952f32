//! Wrong credentials counted per client address: past `LOGIN_MAX_FAILURES` within a minute,
//! every credential from that address is answered 429 until the minute is over, without being
//! checked, so the answers tell a guesser nothing more. Only failures count, and a success does
//! not wipe them: logging in with a token one holds between guesses at another buys nothing.

use super::Refused;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};

const WINDOW_MS: i64 = 60_000;
/// Addresses counted at once. Past that, addresses without a count share one, so memory stays
/// bounded and many addresses together still get only as many tries as one.
const MAX_TRACKED: usize = 10_000;
const SHARED: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

#[derive(Debug, Clone, Copy)]
struct Window {
    started_ms: i64,
    failures: u32,
}

impl Window {
    fn is_over(self, now_ms: i64) -> bool {
        self.started_ms.saturating_add(WINDOW_MS) <= now_ms
    }
}

#[derive(Debug)]
pub(crate) struct Throttle {
    max_failures: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

/// Where `client`'s failures are counted.
fn key(windows: &HashMap<IpAddr, Window>, client: IpAddr) -> IpAddr {
    if windows.contains_key(&client) || windows.len() < MAX_TRACKED { client } else { SHARED }
}

impl Throttle {
    pub(crate) fn new(max_failures: u32) -> Self {
        Self { max_failures, windows: Mutex::default() }
    }

    /// Refuses a client whose failures reached the limit in the current minute.
    pub(crate) fn check(&self, client: IpAddr, now_ms: i64) -> Result<(), Refused> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        match windows.get(&key(&windows, client)) {
            Some(w) if !w.is_over(now_ms) && w.failures >= self.max_failures => {
                let left_ms = u64::try_from(w.started_ms.saturating_add(WINDOW_MS) - now_ms);
                Err(Refused::Throttled {
                    retry_after_s: left_ms.unwrap_or(0).div_ceil(1000).max(1),
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts one wrong credential from `client`.
    pub(crate) fn fail(&self, client: IpAddr, now_ms: i64) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !windows.contains_key(&client) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| !w.is_over(now_ms));
        }
        let key = key(&windows, client);
        let window = windows.entry(key).or_insert(Window { started_ms: now_ms, failures: 0 });
        if window.is_over(now_ms) {
            *window = Window { started_ms: now_ms, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn ip(last: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + last))
    }

    #[test]
    fn the_limit_holds_for_its_minute_and_for_that_address_only() {
        let t = Throttle::new(3);
        for _ in 0..3 {
            assert!(t.check(ip(1), NOW).is_ok());
            t.fail(ip(1), NOW);
        }
        match t.check(ip(1), NOW + 20_500) {
            Err(Refused::Throttled { retry_after_s }) => assert_eq!(retry_after_s, 40),
            other => panic!("{other:?}"),
        }
        assert!(t.check(ip(2), NOW).is_ok(), "another address");
        assert!(t.check(ip(1), NOW + WINDOW_MS).is_ok(), "a new minute");
        t.fail(ip(1), NOW + WINDOW_MS);
        assert!(t.check(ip(1), NOW + WINDOW_MS).is_ok(), "counted afresh");
    }

    #[test]
    fn memory_is_bounded_and_addresses_past_it_share_one_count() {
        let t = Throttle::new(2);
        for i in 0..MAX_TRACKED as u32 + 50 {
            t.fail(ip(i), NOW);
        }
        assert_eq!(t.tracked(), MAX_TRACKED + 1);
        // Two new addresses: one failure each, together the shared limit.
        let (a, b) = (ip(MAX_TRACKED as u32 + 100), ip(MAX_TRACKED as u32 + 101));
        assert!(t.check(a, NOW).is_err(), "the shared count is spent");
        assert!(t.check(b, NOW).is_err());
        // Once the minute is over, old counts make room again.
        t.fail(a, NOW + WINDOW_MS);
        assert_eq!(t.tracked(), 1);
        assert!(t.check(b, NOW + WINDOW_MS).is_ok());
    }
}
