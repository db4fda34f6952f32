//! Services on Linux, from `systemctl`: one `list-units` per check for the states, and the
//! enablement of the unit files, which rarely changes and costs more to read, once an hour.

use super::WatchError;
use super::services::{ServiceSource, service};
use protocol::{Service, ServiceState, StartMode};
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIST_UNITS: &[&str] =
    &["list-units", "--type=service", "--all", "--plain", "--no-legend", "--no-pager"];
const LIST_UNIT_FILES: &[&str] =
    &["list-unit-files", "--type=service", "--plain", "--no-legend", "--no-pager"];

/// How long the unit files' enablement is trusted.
const START_MODES_FOR: Duration = Duration::from_secs(3600);
/// A unit missing from the unit files (a transient one, or one installed since) reads them
/// again, but not more often than this.
const UNKNOWN_RETRY: Duration = Duration::from_secs(300);
/// A `systemctl` that does not answer in this long is stopped: the tick must go on.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The states of a unit's file, by unit name, as `list-unit-files` words them.
type UnitFiles = HashMap<String, String>;

/// Asks systemd through `systemctl`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Default)]
pub(crate) struct Systemctl {
    files: UnitFiles,
    files_read: Option<Instant>,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl Systemctl {
    /// `None`, said once at INFO, where systemd is not the running init (a container) or
    /// `systemctl` is not installed.
    pub(crate) fn open() -> Option<Self> {
        // What sd_booted() checks: the directory exists only while systemd runs as init.
        if !std::path::Path::new("/run/systemd/system").is_dir() {
            tracing::info!("systemd is not running here: no services are watched");
            return None;
        }
        let on_path = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("systemctl").is_file())
        });
        if !on_path {
            tracing::info!("systemctl is not installed: no services are watched");
            return None;
        }
        Some(Self::default())
    }

    fn files_stale(&self, units: &[Unit<'_>]) -> bool {
        let Some(read) = self.files_read else { return true };
        let age = read.elapsed();
        let unknown = || units.iter().any(|u| start_mode(u.name, &self.files).is_none());
        age >= START_MODES_FOR || (age >= UNKNOWN_RETRY && unknown())
    }
}

impl ServiceSource for Systemctl {
    fn list(&mut self) -> Result<Vec<Service>, WatchError> {
        let text = run(LIST_UNITS)?;
        let units = parse_units(&text);
        if self.files_stale(&units) {
            self.files = parse_unit_files(&run(LIST_UNIT_FILES)?);
            self.files_read = Some(Instant::now());
        }
        Ok(services(&units, &self.files))
    }
}

/// `systemctl ARGS`' standard output.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn run(args: &[&str]) -> Result<String, WatchError> {
    let failed = |reason: String| WatchError::Command { command: "systemctl", reason };
    let mut child = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(failed("no pipes".into()));
    };
    // Read beside, so that a systemctl stuck on a busy systemd can be given up on.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let read = stdout.read_to_string(&mut out).and(stderr.read_to_string(&mut err));
        let _ = tx.send(read.map(|_| (out, err)));
    });
    let answer = rx.recv_timeout(TIMEOUT);
    if answer.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    let (out, err) = match answer {
        Ok(read) => read.map_err(|e| failed(e.to_string()))?,
        Err(_) => return Err(failed(format!("no answer within {} s", TIMEOUT.as_secs()))),
    };
    if !status.success() {
        let stderr = err.trim().chars().take(200).collect();
        return Err(WatchError::Failed { command: "systemctl", status, stderr });
    }
    Ok(out)
}

/// One line of `list-units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit<'a> {
    name: &'a str,
    state: ServiceState,
    description: &'a str,
}

/// The first `n` blank-separated words of `line`, and what follows them, trimmed.
fn words(line: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut rest = line.trim_start();
    let mut taken = Vec::with_capacity(n);
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        taken.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    Some((taken, rest.trim_end()))
}

/// The loaded services of `list-units --plain --no-legend`: `UNIT LOAD ACTIVE SUB DESCRIPTION`.
/// Units systemd could not find are left out, and so are states it may add later.
fn parse_units(text: &str) -> Vec<Unit<'_>> {
    text.lines()
        .filter_map(|line| {
            // Without --plain (or in some versions) a failed unit is marked with a bullet.
            let line = line.trim_start().trim_start_matches(['●', '*']);
            let (w, description) = words(line, 4)?;
            let state = match w[2] {
                "active" | "reloading" | "refreshing" => ServiceState::Running,
                "inactive" | "maintenance" => ServiceState::Stopped,
                "activating" => ServiceState::Starting,
                "deactivating" => ServiceState::Stopping,
                "failed" => ServiceState::Failed,
                _ => return None,
            };
            let found = w[1] != "not-found" && w[0].ends_with(".service");
            found.then_some(Unit { name: w[0], state, description })
        })
        .collect()
}

/// `list-unit-files --plain --no-legend`: `UNIT STATE [PRESET]` (the preset since systemd 245).
fn parse_unit_files(text: &str) -> UnitFiles {
    text.lines()
        .filter_map(|line| {
            let (w, _) = words(line, 2)?;
            Some((w[0].to_owned(), w[1].to_owned()))
        })
        .collect()
}

/// How `name` starts: its own unit file's state, or for an instance (`getty@tty1.service`)
/// its template's (`getty@.service`).
fn start_mode(name: &str, files: &UnitFiles) -> Option<StartMode> {
    if let Some(state) = files.get(name) {
        return mode(state, false);
    }
    let (prefix, _) = name.split_once('@')?;
    let suffix = name.rsplit_once('.')?.1;
    mode(files.get(&format!("{prefix}@.{suffix}"))?, true)
}

fn mode(state: &str, instance: bool) -> Option<StartMode> {
    Some(match state {
        "enabled" | "enabled-runtime" => StartMode::Auto,
        // A template is `indirect` when some of its instances are enabled; a loaded instance is
        // most likely one of them (`postgresql@15-main`).
        "indirect" if instance => StartMode::Auto,
        "masked" | "masked-runtime" => StartMode::Disabled,
        "disabled" | "static" | "indirect" | "generated" | "transient" | "alias" | "linked"
        | "linked-runtime" => StartMode::Manual,
        _ => return None,
    })
}

fn services(units: &[Unit<'_>], files: &UnitFiles) -> Vec<Service> {
    units
        .iter()
        .filter_map(|u| service(u.name, u.description, u.state, start_mode(u.name, files)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::services::{ServiceChoice, select};

    const UNITS: &str = include_str!("../../testdata/systemctl/list-units.txt");
    const FILES: &str = include_str!("../../testdata/systemctl/list-unit-files.txt");
    const OLD_FILES: &str =
        include_str!("../../testdata/systemctl/list-unit-files-two-columns.txt");

    fn find<'a>(services: &'a [Service], name: &str) -> &'a Service {
        services.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn recorded_units_become_services_with_their_start_modes() {
        let units = parse_units(UNITS);
        assert_eq!(units.len(), 21, "auditd is not found and is left out");
        assert_eq!(
            units[4],
            Unit {
                name: "cron.service",
                state: ServiceState::Running,
                description: "Regular background program processing daemon"
            }
        );
        let all = services(&units, &parse_unit_files(FILES));
        let state = |name| {
            let s = find(&all, name);
            (s.state, s.start)
        };
        use ServiceState::*;
        use StartMode::*;
        assert_eq!(state("nginx.service"), (Failed, Some(Auto)));
        assert_eq!(state("docker.service"), (Starting, Some(Auto)));
        assert_eq!(state("unattended-upgrades.service"), (Stopping, Some(Auto)));
        assert_eq!(state("apt-daily.service"), (Stopped, Some(Manual)));
        assert_eq!(state("systemd-networkd.service"), (Stopped, Some(Disabled)));
        assert_eq!(state("getty@tty1.service"), (Running, Some(Auto)), "from getty@.service");
        assert_eq!(state("postgresql@15-main.service"), (Running, Some(Auto)), "indirect template");
        assert_eq!(state("user@1000.service"), (Running, Some(Manual)), "static template");
        assert_eq!(
            find(&all, "ssh.service").display_name.as_deref(),
            Some("OpenBSD Secure Shell server")
        );

        let watched: Vec<String> =
            select(all, &ServiceChoice::Automatic).into_iter().map(|s| s.name).collect();
        assert_eq!(
            watched,
            [
                "apparmor.service",
                "console-setup.service",
                "cron.service",
                "docker.service",
                "getty@tty1.service",
                "keyboard-setup.service",
                "nginx.service",
                "postgresql.service",
                "postgresql@15-main.service",
                "ssh.service",
                "systemd-timesyncd.service",
                "unattended-upgrades.service",
            ]
        );
    }

    #[test]
    fn unit_files_of_older_systemd_have_no_preset_column() {
        let files = parse_unit_files(OLD_FILES);
        assert_eq!(files.len(), 5);
        assert_eq!(start_mode("getty@tty2.service", &files), Some(StartMode::Auto));
        assert_eq!(start_mode("systemd-journald.service", &files), Some(StartMode::Manual));
        assert_eq!(start_mode("nginx.service", &files), None);
    }

    #[test]
    fn odd_lines_are_skipped_and_a_bullet_tolerated() {
        let text = "● nginx.service loaded failed failed A web server\n\
                    \n\
                    short.service loaded\n\
                    odd.service loaded weird running Odd\n\
                    sys.mount loaded active mounted /sys\n\
                    bare.service loaded active running\n";
        let units = parse_units(text);
        let names: Vec<&str> = units.iter().map(|u| u.name).collect();
        assert_eq!(names, ["nginx.service", "bare.service"]);
        assert_eq!((units[0].state, units[0].description), (ServiceState::Failed, "A web server"));
        assert_eq!(services(&units, &UnitFiles::new())[1].display_name, None);
    }
}
