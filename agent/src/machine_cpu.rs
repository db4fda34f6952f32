//! Whole-machine CPU on Windows from `GetSystemTimes`, instead of sysinfo's performance
//! counters: it costs one system call, needs no PDH query (which some Windows installs have
//! broken and Wine does not implement), and gives exact deltas between ticks.

/// Idle and total (kernel + user; kernel time includes idle) 100 ns units since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    pub idle: u64,
    pub total: u64,
}

/// Busy share of the machine between two samples, 0..1.
pub(crate) fn busy_fraction(before: Times, after: Times) -> f64 {
    let total = after.total.saturating_sub(before.total);
    let idle = after.idle.saturating_sub(before.idle).min(total);
    if total == 0 { 0.0 } else { 1.0 - idle as f64 / total as f64 }
}

/// Remembers the previous sample, so each call reports the share since the last one.
#[cfg(windows)]
#[derive(Debug, Default)]
pub(crate) struct MachineCpu {
    last: Option<Times>,
}

#[cfg(windows)]
impl MachineCpu {
    /// The busy share since the previous call; 0 on the first call or if the call fails.
    pub(crate) fn sample(&mut self) -> f64 {
        let Some(now) = read() else { return 0.0 };
        let share = self.last.map_or(0.0, |before| busy_fraction(before, now));
        self.last = Some(now);
        share
    }
}

#[cfg(windows)]
#[allow(unsafe_code)]
fn read() -> Option<Times> {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::GetSystemTimes;
    let zero = || FILETIME { dwLowDateTime: 0, dwHighDateTime: 0 };
    let (mut idle, mut kernel, mut user) = (zero(), zero(), zero());
    // SAFETY: three valid pointers to FILETIME values on this stack frame, which the call only
    // writes to and which outlive it.
    let ok = unsafe { GetSystemTimes(&mut idle, &mut kernel, &mut user) };
    let value = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    (ok != 0).then(|| Times { idle: value(idle), total: value(kernel) + value(user) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_share_comes_from_deltas() {
        let before = Times { idle: 1_000, total: 2_000 };
        assert_eq!(busy_fraction(before, Times { idle: 1_750, total: 3_000 }), 0.25);
        assert_eq!(busy_fraction(before, before), 0.0);
        // Counters never run backwards, but a bad read must not give a share outside 0..1.
        assert_eq!(busy_fraction(before, Times { idle: 9_000, total: 2_500 }), 0.0);
        assert_eq!(busy_fraction(before, Times { idle: 0, total: 2_500 }), 1.0);
    }
}
