//! Services on Windows, from the service control manager: one `EnumServicesStatusExW` per check
//! gives every service's state; start types need a `QueryServiceConfigW` per service (opening
//! some 300 services), so they are kept and read again hourly, or for a service new since.

use protocol::{ServiceState, StartMode};

/// `SERVICE_STOPPED` .. `SERVICE_PAUSED`, and the exit codes that mean no failure.
const STOPPED: u32 = 1;
const NO_ERROR: u32 = 0;
const ERROR_SERVICE_NEVER_STARTED: u32 = 1077;

/// A state as `SERVICE_STATUS_PROCESS` reports it. A stopped service whose exit code is an
/// error (`ERROR_PROCESS_ABORTED` after a crash, say) failed: Windows has no state of its own
/// for that, as systemd does.
pub(crate) fn state(current_state: u32, win32_exit_code: u32) -> Option<ServiceState> {
    Some(match current_state {
        STOPPED if ![NO_ERROR, ERROR_SERVICE_NEVER_STARTED].contains(&win32_exit_code) => {
            ServiceState::Failed
        }
        STOPPED => ServiceState::Stopped,
        2 | 5 => ServiceState::Starting, // start or continue pending
        3 => ServiceState::Stopping,
        4 => ServiceState::Running,
        6 | 7 => ServiceState::Paused, // pause pending, paused
        _ => return None,
    })
}

/// A `dwStartType`: boot, system and automatic (delayed or not) start with the machine.
pub(crate) fn start_mode(start_type: u32) -> Option<StartMode> {
    Some(match start_type {
        0..=2 => StartMode::Auto,
        3 => StartMode::Manual,
        4 => StartMode::Disabled,
        _ => return None,
    })
}

#[cfg(windows)]
pub(crate) use system::Scm;

#[cfg(windows)]
mod system {
    use super::super::services::{ServiceSource, service};
    use super::super::{WatchError, last_error, wide};
    use protocol::{Service, StartMode};
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    use windows_sys::Win32::System::Services::{
        CloseServiceHandle, ENUM_SERVICE_STATUS_PROCESSW, EnumServicesStatusExW, OpenSCManagerW,
        OpenServiceW, QUERY_SERVICE_CONFIGW, QueryServiceConfigW, SC_ENUM_PROCESS_INFO, SC_HANDLE,
        SC_MANAGER_CONNECT, SC_MANAGER_ENUMERATE_SERVICE, SERVICE_QUERY_CONFIG, SERVICE_STATE_ALL,
        SERVICE_WIN32,
    };

    const START_TYPES_FOR: Duration = Duration::from_secs(3600);
    const ERROR_MORE_DATA: i32 = 234;

    /// The service control manager, and the start types read from it.
    #[derive(Debug, Default)]
    pub(crate) struct Scm {
        /// `None` for a service whose configuration could not be read.
        start_types: HashMap<String, Option<StartMode>>,
        read_at: Option<Instant>,
        /// Kept between checks so that one call fits every service; `u64`s for the alignment
        /// of the records Windows writes into it.
        buffer: Vec<u64>,
    }

    /// A handle from `OpenSCManagerW` or `OpenServiceW`, closed when dropped.
    struct Handle(SC_HANDLE);

    impl Drop for Handle {
        #[allow(unsafe_code)]
        fn drop(&mut self) {
            // SAFETY: the handle came from a successful open and is closed once, here.
            unsafe { CloseServiceHandle(self.0) };
        }
    }

    /// A NUL-terminated UTF-16 string written by Windows.
    ///
    /// # Safety
    /// `p` is null or points to a NUL-terminated UTF-16 string that outlives the call.
    #[allow(unsafe_code)]
    unsafe fn from_wide(p: *const u16) -> String {
        if p.is_null() {
            return String::new();
        }
        // SAFETY: the caller promises a NUL-terminated string; reading stops at the NUL.
        unsafe {
            let len = (0..).take_while(|&i| *p.add(i) != 0).count();
            String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
        }
    }

    #[allow(unsafe_code)]
    fn open_manager() -> Result<Handle, WatchError> {
        // SAFETY: null machine and database names mean this machine's active database.
        let h = unsafe {
            OpenSCManagerW(
                std::ptr::null(),
                std::ptr::null(),
                SC_MANAGER_CONNECT | SC_MANAGER_ENUMERATE_SERVICE,
            )
        };
        if h.is_null() { Err(last_error("OpenSCManagerW")) } else { Ok(Handle(h)) }
    }

    /// (name, display name, state, exit code) of every Win32 service.
    #[allow(unsafe_code)]
    fn enumerate(
        manager: &Handle,
        buffer: &mut Vec<u64>,
    ) -> Result<Vec<(String, String, u32, u32)>, WatchError> {
        let mut found = Vec::new();
        let mut resume = 0u32;
        if buffer.is_empty() {
            buffer.resize(64 * 1024 / 8, 0);
        }
        loop {
            let (mut needed, mut returned) = (0u32, 0u32);
            let bytes = u32::try_from(buffer.len() * 8).unwrap_or(u32::MAX);
            // SAFETY: the buffer is writable for `bytes` bytes and 8-byte aligned; the counts
            // and resume handle are valid for writes; no group name filters.
            let ok = unsafe {
                EnumServicesStatusExW(
                    manager.0,
                    SC_ENUM_PROCESS_INFO,
                    SERVICE_WIN32,
                    SERVICE_STATE_ALL,
                    buffer.as_mut_ptr().cast(),
                    bytes,
                    &mut needed,
                    &mut returned,
                    &mut resume,
                    std::ptr::null(),
                )
            };
            let more =
                ok == 0 && std::io::Error::last_os_error().raw_os_error() == Some(ERROR_MORE_DATA);
            if ok == 0 && !more {
                return Err(last_error("EnumServicesStatusExW"));
            }
            // SAFETY: on success or ERROR_MORE_DATA, the buffer starts with `returned` records
            // whose strings point into the same buffer, which is not touched until they are
            // copied out.
            let records = unsafe {
                std::slice::from_raw_parts(
                    buffer.as_ptr().cast::<ENUM_SERVICE_STATUS_PROCESSW>(),
                    returned as usize,
                )
            };
            for r in records {
                let status = r.ServiceStatusProcess;
                // SAFETY: the names are NUL-terminated strings in the buffer (see above).
                let (name, display) =
                    unsafe { (from_wide(r.lpServiceName), from_wide(r.lpDisplayName)) };
                found.push((name, display, status.dwCurrentState, status.dwWin32ExitCode));
            }
            if !more {
                return Ok(found);
            }
            // Next time, room for everything at once.
            let want = (bytes as usize + needed as usize).div_ceil(8);
            buffer.resize(want.max(buffer.len()), 0);
        }
    }

    /// `dwStartType` of one service; `None` when it cannot be opened or read.
    #[allow(unsafe_code)]
    fn start_type(manager: &Handle, name: &str) -> Option<u32> {
        let name = wide(name);
        // SAFETY: a valid manager handle and a NUL-terminated name.
        let service = unsafe { OpenServiceW(manager.0, name.as_ptr(), SERVICE_QUERY_CONFIG) };
        if service.is_null() {
            return None;
        }
        let service = Handle(service);
        // The documented maximum size of the configuration with its strings.
        let mut buffer = vec![0u64; 8 * 1024 / 8];
        let mut needed = 0u32;
        // SAFETY: the buffer is writable for 8 KiB and aligned for QUERY_SERVICE_CONFIGW.
        let ok = unsafe {
            QueryServiceConfigW(service.0, buffer.as_mut_ptr().cast(), 8 * 1024, &mut needed)
        };
        // SAFETY: on success the buffer starts with the structure.
        (ok != 0).then(|| unsafe { (*buffer.as_ptr().cast::<QUERY_SERVICE_CONFIGW>()).dwStartType })
    }

    impl ServiceSource for Scm {
        fn list(&mut self) -> Result<Vec<Service>, WatchError> {
            let manager = open_manager()?;
            let raw = enumerate(&manager, &mut self.buffer)?;
            if self.read_at.is_none_or(|at| at.elapsed() >= START_TYPES_FOR) {
                self.start_types.clear();
                self.read_at = Some(Instant::now());
            }
            for (name, ..) in &raw {
                if !self.start_types.contains_key(name) {
                    let mode = start_type(&manager, name).and_then(super::start_mode);
                    self.start_types.insert(name.clone(), mode);
                }
            }
            // Services removed since are forgotten with the hourly reading.
            Ok(raw
                .iter()
                .filter_map(|(name, display, state, exit)| {
                    let start = self.start_types.get(name).copied().flatten();
                    service(name, display, super::state(*state, *exit)?, start)
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::services::{ServiceChoice, select, service};

    /// (name, display name, dwCurrentState, dwWin32ExitCode, dwStartType) as a Windows 11
    /// machine's service control manager reported them.
    const RECORDED: &[(&str, &str, u32, u32, u32)] = &[
        ("AudioEndpointBuilder", "Windows Audio Endpoint Builder", 4, 0, 2),
        ("BITS", "Background Intelligent Transfer Service", 1, 0, 3),
        ("ContosoBackup", "Contoso Backup & Sync", 1, 1067, 2),
        ("Dhcp", "DHCP Client", 4, 0, 2),
        ("edgeupdate", "Microsoft Edge Update Service (edgeupdate)", 1, 0, 2),
        ("MpsSvc", "Windows Defender Firewall", 4, 0, 2),
        ("RemoteRegistry", "Remote Registry", 1, 1077, 4),
        ("Spooler", "Print Spooler", 2, 0, 2),
        ("sppsvc", "Software Protection", 3, 0, 2),
        ("TermService", "Remote Desktop Services", 4, 0, 3),
        ("W32Time", "Windows Time", 7, 0, 3),
        ("WSearch", "Windows Search", 5, 0, 2),
        ("odd", "Unknown state", 9, 0, 7),
    ];

    #[test]
    fn recorded_states_and_start_types_map_to_the_wire() {
        use ServiceState::*;
        use StartMode::*;
        let all: Vec<_> = RECORDED
            .iter()
            .filter_map(|&(name, display, current, exit, start)| {
                service(name, display, state(current, exit)?, start_mode(start))
            })
            .collect();
        let got: Vec<(&str, ServiceState, Option<StartMode>)> =
            all.iter().map(|s| (s.name.as_str(), s.state, s.start)).collect();
        assert_eq!(
            got,
            [
                ("AudioEndpointBuilder", Running, Some(Auto)),
                ("BITS", Stopped, Some(Manual)),
                ("ContosoBackup", Failed, Some(Auto)),
                ("Dhcp", Running, Some(Auto)),
                ("edgeupdate", Stopped, Some(Auto)),
                ("MpsSvc", Running, Some(Auto)),
                ("RemoteRegistry", Stopped, Some(Disabled)),
                ("Spooler", Starting, Some(Auto)),
                ("sppsvc", Stopping, Some(Auto)),
                ("TermService", Running, Some(Manual)),
                ("W32Time", Paused, Some(Manual)),
                ("WSearch", Starting, Some(Auto)),
            ]
        );
        assert_eq!(all[2].display_name.as_deref(), Some("Contoso Backup & Sync"));
        let watched = select(all, &ServiceChoice::Automatic);
        assert_eq!(watched.len(), 8, "{watched:?}");
        assert!((0..=2).all(|t| start_mode(t) == Some(StartMode::Auto)));
    }
}
