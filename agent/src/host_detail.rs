//! The machine's detail sent with every batch (`host`): each core's busy share, swap, and on
//! Windows the commit charge. Linux and macOS read it from what sysinfo refreshed for the tick
//! anyway; Windows from the kernel directly, since sysinfo's per-core figures come from PDH
//! counters, which Wine lacks and some Windows installs have broken.

use protocol::Limits;

/// Linux and macOS: the cores and swap sysinfo read in the tick's CPU and memory refresh.
#[cfg(not(windows))]
pub(crate) fn from_sysinfo(sys: &sysinfo::System) -> protocol::Host {
    let cores = sys.cpus().iter().take(Limits::MAX_CORES);
    protocol::Host {
        cores: cores.map(|c| crate::collect::share(f64::from(c.usage()) / 100.0)).collect(),
        swap_used: Some(sys.used_swap().min(i64::MAX as u64)),
        swap_total: Some(sys.total_swap().min(i64::MAX as u64)),
        commit_used: None,
        commit_limit: None,
    }
}

/// Each core's busy share between two samples; none when the number of cores changed between
/// them (a processor added while running), as no share then covers the whole interval.
#[cfg(any(windows, test))]
pub(crate) fn core_shares(
    before: &[crate::machine_cpu::Times],
    after: &[crate::machine_cpu::Times],
) -> Vec<f64> {
    if before.len() != after.len() {
        return vec![];
    }
    let shares = before.iter().zip(after).take(Limits::MAX_CORES);
    shares.map(|(b, a)| crate::collect::share(crate::machine_cpu::busy_fraction(*b, *a))).collect()
}

/// Pages in use and pages in all, summed over the `SYSTEM_PAGEFILE_INFORMATION` records that
/// `NtQuerySystemInformation(SystemPageFileInformation)` wrote (no page file writes none):
/// each starts with `NextEntryOffset`, `TotalSize`, `TotalInUse`, `PeakUsage` as 32-bit
/// numbers, and the last has an offset of 0.
#[cfg(any(windows, test))]
pub(crate) fn page_file_pages(records: &[u8]) -> (u64, u64) {
    let field = |at: usize| -> Option<u64> {
        let bytes = records.get(at..at + 4)?;
        Some(u64::from(u32::from_le_bytes(bytes.try_into().ok()?)))
    };
    let (mut used, mut total, mut at) = (0, 0, 0usize);
    while let (Some(next), Some(size), Some(in_use)) = (field(at), field(at + 4), field(at + 8)) {
        total += size;
        used += in_use;
        if next == 0 {
            break;
        }
        at += next as usize;
    }
    (used, total)
}

#[cfg(windows)]
pub(crate) use windows::WindowsHost;

#[cfg(windows)]
mod windows {
    use crate::machine_cpu::Times;
    use protocol::Host;
    use windows_sys::Wdk::System::SystemInformation::{
        NtQuerySystemInformation, SYSTEM_INFORMATION_CLASS, SystemProcessorPerformanceInformation,
    };
    use windows_sys::Win32::System::ProcessStatus::{GetPerformanceInfo, PERFORMANCE_INFORMATION};
    use windows_sys::Win32::System::WindowsProgramming::SYSTEM_PROCESSOR_PERFORMANCE_INFORMATION;

    /// Not in windows-sys; documented in the Windows driver kit.
    const SYSTEM_PAGE_FILE_INFORMATION: SYSTEM_INFORMATION_CLASS = 18;
    const STATUS_INFO_LENGTH_MISMATCH: i32 = 0xC000_0004_u32 as i32;

    /// The previous per-core sample, and the buffer the kernel writes into, kept between ticks.
    #[derive(Default)]
    pub(crate) struct WindowsHost {
        last: Vec<Times>,
        cores: Vec<SYSTEM_PROCESSOR_PERFORMANCE_INFORMATION>,
    }

    impl std::fmt::Debug for WindowsHost {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WindowsHost").field("cores", &self.last.len()).finish_non_exhaustive()
        }
    }

    impl WindowsHost {
        /// Per-core shares since the previous call (none at the first), page file and commit.
        pub(crate) fn sample(&mut self) -> Host {
            let now = self.read_cores().unwrap_or_default();
            let cores = super::core_shares(&self.last, &now);
            self.last = now;
            let (commit, page_size) = commit().unzip();
            let swap = page_size.and_then(page_file);
            Host {
                cores,
                swap_used: swap.map(|s| s.0),
                swap_total: swap.map(|s| s.1),
                commit_used: commit.map(|c| c.0),
                commit_limit: commit.map(|c| c.1),
            }
        }

        /// Idle and busy times of each core since boot.
        #[allow(unsafe_code)]
        fn read_cores(&mut self) -> Option<Vec<Times>> {
            let size = std::mem::size_of::<SYSTEM_PROCESSOR_PERFORMANCE_INFORMATION>();
            if self.cores.is_empty() {
                self.cores.resize(64, Default::default());
            }
            for _ in 0..3 {
                let bytes = u32::try_from(self.cores.len() * size).ok()?;
                let mut written = 0u32;
                // SAFETY: the buffer is writable for `bytes` bytes and aligned for the records
                // the kernel writes; `written` is valid for a write.
                let status = unsafe {
                    NtQuerySystemInformation(
                        SystemProcessorPerformanceInformation,
                        self.cores.as_mut_ptr().cast(),
                        bytes,
                        &mut written,
                    )
                };
                if status == STATUS_INFO_LENGTH_MISMATCH {
                    let want = (written as usize).div_ceil(size).max(self.cores.len() * 2);
                    self.cores.resize(want, Default::default());
                    continue;
                }
                if status < 0 {
                    return None;
                }
                let count = (written as usize / size).min(self.cores.len());
                let times = self.cores[..count].iter().map(|c| {
                    let t = |v: i64| u64::try_from(v).unwrap_or(0);
                    // Kernel time includes idle time, as in GetSystemTimes.
                    Times { idle: t(c.IdleTime), total: t(c.KernelTime) + t(c.UserTime) }
                });
                return Some(times.collect());
            }
            None
        }
    }

    /// The commit charge and limit in bytes, and the page size.
    #[allow(unsafe_code)]
    fn commit() -> Option<((u64, u64), u64)> {
        let mut info = PERFORMANCE_INFORMATION::default();
        let size = std::mem::size_of::<PERFORMANCE_INFORMATION>() as u32;
        info.cb = size;
        // SAFETY: a writable structure of the size passed.
        let ok = unsafe { GetPerformanceInfo(&mut info, size) };
        let page = info.PageSize as u64;
        let bytes = |pages: usize| (pages as u64).saturating_mul(page).min(i64::MAX as u64);
        (ok != 0).then(|| ((bytes(info.CommitTotal), bytes(info.CommitLimit)), page))
    }

    /// Page files in use and in all, bytes.
    #[allow(unsafe_code)]
    fn page_file(page_size: u64) -> Option<(u64, u64)> {
        // A few page files with their names fit many times over.
        let mut buffer = vec![0u64; 512];
        let mut written = 0u32;
        // SAFETY: the buffer is writable for its size in bytes and 8-byte aligned.
        let status = unsafe {
            NtQuerySystemInformation(
                SYSTEM_PAGE_FILE_INFORMATION,
                buffer.as_mut_ptr().cast(),
                (buffer.len() * 8) as u32,
                &mut written,
            )
        };
        if status < 0 {
            return None;
        }
        // SAFETY: a u64 buffer read as the bytes it holds, within its length.
        let bytes =
            unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), buffer.len() * 8) };
        let (used, total) = super::page_file_pages(&bytes[..(written as usize).min(bytes.len())]);
        let bytes = |pages: u64| pages.saturating_mul(page_size).min(i64::MAX as u64);
        Some((bytes(used), bytes(total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine_cpu::Times;

    /// Two samples of a 4-core machine 5 s apart (50,000,000 units of 100 ns per core):
    /// idle, kernel (idle included) and user times as the kernel reported them.
    const BEFORE: [(u64, u64, u64); 4] = [
        (1_843_211_093_750, 1_901_744_843_750, 88_218_906_250),
        (1_851_004_375_000, 1_889_532_656_250, 79_915_781_250),
        (1_847_997_500_000, 1_893_176_718_750, 83_430_625_000),
        (1_852_640_625_000, 1_887_225_468_750, 78_541_093_750),
    ];
    const AFTER: [(u64, u64, u64); 4] = [
        (1_843_256_093_750, 1_901_791_406_250, 88_222_343_750),
        (1_851_004_375_000, 1_889_557_656_250, 79_940_781_250),
        (1_848_047_500_000, 1_893_226_718_750, 83_430_625_000),
        (1_852_672_343_750, 1_887_263_906_250, 78_552_656_250),
    ];

    fn times(raw: &[(u64, u64, u64)]) -> Vec<Times> {
        raw.iter().map(|&(idle, kernel, user)| Times { idle, total: kernel + user }).collect()
    }

    #[test]
    fn recorded_core_times_give_each_cores_share() {
        let shares = core_shares(&times(&BEFORE), &times(&AFTER));
        assert_eq!(shares, [0.1, 1.0, 0.0, 0.3656]);
        assert!(core_shares(&[], &times(&AFTER)).is_empty(), "no share at the first sample");
        assert!(core_shares(&times(&BEFORE[..2]), &times(&AFTER)).is_empty());
    }

    /// A `SYSTEM_PAGEFILE_INFORMATION` record as x64 Windows lays it out: four 32-bit numbers,
    /// a `UNICODE_STRING` (lengths, padding, pointer) and the name it points to.
    fn record(next: u32, total: u32, in_use: u32, name: &str) -> Vec<u8> {
        let name: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut r = Vec::new();
        for v in [next, total, in_use, in_use + 100] {
            r.extend(v.to_le_bytes());
        }
        r.extend((name.len() as u16).to_le_bytes());
        r.extend((name.len() as u16 + 2).to_le_bytes());
        r.extend([0; 4]);
        r.extend(0x0000_01f0_4a2c_0020_u64.to_le_bytes());
        r.extend(name);
        r.extend([0, 0]);
        if next > 0 {
            r.resize(next as usize, 0);
        }
        r
    }

    #[test]
    fn page_files_add_up_and_odd_buffers_do_not_panic() {
        let mut records = record(80, 393_216, 20_480, r"\??\C:\pagefile.sys");
        records.extend(record(0, 262_144, 1_024, r"\??\D:\pagefile.sys"));
        assert_eq!(page_file_pages(&records), (21_504, 655_360));
        assert_eq!(page_file_pages(&[]), (0, 0), "no page file");
        assert_eq!(page_file_pages(&records[..10]), (0, 0));
        let mut past_the_end = record(0, 1, 1, "x");
        past_the_end[0] = 200;
        assert_eq!(page_file_pages(&past_the_end), (1, 1));
    }
}
