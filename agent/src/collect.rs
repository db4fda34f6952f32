//! What a tick measures. Every figure is a delta since the previous tick (CPU, network), so a
//! tick never sleeps to sample: it costs a few milliseconds however long the interval is.

use protocol::{AgentInfo, Drive, Event, EventKind, Host, IngestBatch, Notice, Service};
use std::path::{Path, PathBuf};
use std::time::Instant;
use sysinfo::{DiskRefreshKind, Disks, Networks, ProcessRefreshKind, ProcessesToUpdate, System};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One tick's readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The machine's figures (a `metric` event).
    pub metric: Event,
    /// The busiest processes (`proc` events).
    pub procs: Vec<Event>,
    /// Every fixed drive; none where the system says nothing of its drives.
    pub drives: Vec<Drive>,
}

/// What a batch carries besides its events, each part only when there is something: the
/// machine's detail at every tick, the watched services and the notices when a check of them
/// ran (every `WATCH_SECONDS`) and found something to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detail {
    /// Per-core CPU, swap and commit.
    pub host: Option<Host>,
    /// Every watched service, when the list is due (see [`protocol::IngestBatch::services`]).
    pub services: Option<Vec<Service>>,
    /// What happened since the previous check: service changes, system log entries.
    pub notices: Vec<Notice>,
}

/// Where a tick's readings come from: the system in production, fakes in tests and the simulator.
pub trait Collector: Send + 'static {
    /// One tick's readings; the figures that are rates cover the time since the previous call.
    fn collect(&mut self) -> Reading;

    /// The same tick's [`Detail`], asked for right after [`Collector::collect`]; fakes that
    /// have none send batches without it.
    fn detail(&mut self) -> Detail {
        Detail::default()
    }
}

/// The platform name the backend stores.
pub(crate) fn platform() -> &'static str {
    match std::env::consts::OS {
        "windows" => "windows",
        "macos" => "macos",
        _ => "linux",
    }
}

/// Now, as batches and notices stamp it.
pub(crate) fn now_iso() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// One batch with a fresh id, stamped now.
pub(crate) fn build_batch(agent_id: &str, reading: Reading, detail: Detail) -> IngestBatch {
    let ts = now_iso();
    let mut events = Vec::with_capacity(1 + reading.procs.len());
    events.push(reading.metric);
    events.extend(reading.procs);
    IngestBatch {
        agent_id: agent_id.to_owned(),
        ts,
        platform: platform().to_owned(),
        // Time-ordered, so the backend's index of batch ids grows at one end.
        batch_id: Some(uuid::Uuid::now_v7().to_string()),
        events,
        drives: (!reading.drives.is_empty()).then_some(reading.drives),
        agent: Some(AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: started().elapsed().as_secs(),
        }),
        host: detail.host,
        services: detail.services,
        notices: (!detail.notices.is_empty()).then_some(detail.notices),
    }
}

/// When this agent started: its first batch, which the first tick builds at once.
fn started() -> std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// The `n` busiest processes. `usage` is sysinfo's percent of one core; dividing by all cores
/// gives the fraction of the whole machine, so a busy process on 8 cores is not 800%.
pub(crate) fn top_processes(
    mut procs: Vec<(u32, String, f32, u64)>,
    n: usize,
    cores: usize,
) -> Vec<Event> {
    procs.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    let cores = cores.max(1) as f64;
    procs
        .into_iter()
        .take(n)
        .map(|(pid, name, usage, rss)| {
            let cpu = share(f64::from(usage) / 100.0 / cores);
            Event::process(pid, clip_name(&name), cpu, rss.min(i64::MAX as u64))
        })
        .collect()
}

/// A share of the CPU, 0..1, to 0.01 % of the machine: what sysinfo's f32 percentages measure.
/// The binary tail past that carries nothing, and costs the backend several bytes a figure
/// where it stores decimals as their digits.
pub(crate) fn share(x: f64) -> f64 {
    (x.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0
}

/// Names the backend accepts: printable, 1-260 characters.
fn clip_name(name: &str) -> String {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).take(260).collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() { "?".to_owned() } else { trimmed.to_owned() }
}

/// The real collector, on sysinfo.
#[derive(Debug)]
pub struct SystemCollector {
    sys: System,
    disks: Disks,
    networks: Networks,
    last: Instant,
    top: usize,
    system_drive: PathBuf,
    #[cfg(windows)]
    machine_cpu: crate::machine_cpu::MachineCpu,
    #[cfg(windows)]
    host: crate::host_detail::WindowsHost,
    watch: Option<crate::watch::Watch>,
}

impl SystemCollector {
    /// Takes the first CPU and process samples now, so that the first tick's deltas mean
    /// something; each reading lists the `top` busiest processes.
    pub fn new(top: usize) -> Result<Self, sysinfo::Error> {
        let mut sys = System::new()?;
        // The first CPU figures need a previous sample; taking it now makes the first tick's
        // values meaningful without sleeping.
        #[cfg(windows)]
        let mut machine_cpu = crate::machine_cpu::MachineCpu::default();
        #[cfg(windows)]
        machine_cpu.sample();
        #[cfg(windows)]
        let mut host = crate::host_detail::WindowsHost::default();
        #[cfg(windows)]
        host.sample();
        #[cfg(not(windows))]
        sys.refresh_cpu_usage();
        sys.refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
        Ok(Self {
            #[cfg(windows)]
            machine_cpu,
            #[cfg(windows)]
            host,
            watch: None,
            sys,
            disks: Disks::new_with_refreshed_list()?,
            networks: Networks::new_with_refreshed_list()?,
            last: Instant::now(),
            top,
            system_drive: system_drive(),
        })
    }

    /// Also checks services and the system log, as `watch` says.
    pub(crate) fn watching(mut self, watch: crate::watch::Watch) -> Self {
        self.watch = Some(watch);
        self
    }
}

/// CPU and memory only; threads are not listed (on Linux sysinfo would otherwise read every
/// thread of every process, for figures the agent does not send).
fn process_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing().with_cpu().with_memory().without_tasks()
}

fn system_drive() -> PathBuf {
    if cfg!(windows) {
        let drive = std::env::var("SystemDrive").unwrap_or_else(|_| "C:".into());
        PathBuf::from(format!("{drive}\\"))
    } else {
        PathBuf::from("/")
    }
}

/// The drives worth a figure: fixed ones with a size, each mount once (bind mounts and
/// container overlays list one device several times), at most as many as the backend takes.
fn fixed_drives<'a>(
    disks: impl Iterator<Item = (&'a Path, bool, u64, u64, u64, u64)>,
    elapsed_s: f64,
) -> Vec<Drive> {
    let mut seen = std::collections::HashSet::new();
    disks
        .filter(|(mount, removable, _, total, _, _)| {
            !removable && *total > 0 && seen.insert(*mount)
        })
        .take(protocol::Limits::MAX_DRIVES)
        .map(|(mount, _, free, total, read, written)| Drive {
            mount: clip_name(&mount.to_string_lossy()),
            free: free.min(i64::MAX as u64),
            total: total.min(i64::MAX as u64),
            read_bps: Some((read as f64 / elapsed_s).round()),
            write_bps: Some((written as f64 / elapsed_s).round()),
        })
        .collect()
}

/// The disk whose mount point is the longest prefix of `target`.
fn disk_space<'a>(
    disks: impl Iterator<Item = (&'a Path, u64, u64)>,
    target: &Path,
) -> Option<(u64, u64)> {
    disks
        .filter(|(mount, _, _)| target.starts_with(mount))
        .max_by_key(|(mount, _, _)| mount.as_os_str().len())
        .map(|(_, free, total)| (free, total))
}

impl Collector for SystemCollector {
    fn collect(&mut self) -> Reading {
        let elapsed = self.last.elapsed().as_secs_f64().max(0.001);
        self.last = Instant::now();
        #[cfg(windows)]
        let cpu = self.machine_cpu.sample();
        #[cfg(not(windows))]
        let cpu = {
            self.sys.refresh_cpu_usage();
            f64::from(self.sys.global_cpu_usage()) / 100.0
        };
        self.sys.refresh_memory();
        self.sys.refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
        // Free space of the known disks; the list itself is read once, at start-up.
        self.disks
            .refresh_specifics(false, DiskRefreshKind::nothing().with_storage().with_io_usage());
        self.networks.refresh(true);
        let (rx, tx) = self
            .networks
            .iter()
            .fold((0u64, 0u64), |(r, t), (_, n)| (r + n.received(), t + n.transmitted()));
        let disk = disk_space(
            self.disks.iter().map(|d| (d.mount_point(), d.available_space(), d.total_space())),
            &self.system_drive,
        );
        let drives = fixed_drives(
            self.disks.iter().map(|d| {
                let io = d.usage();
                (
                    d.mount_point(),
                    d.is_removable(),
                    d.available_space(),
                    d.total_space(),
                    io.read_bytes,
                    io.written_bytes,
                )
            }),
            elapsed,
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let procs = self
            .sys
            .processes()
            .values()
            .map(|p| {
                (
                    p.pid().as_u32(),
                    p.name().to_string_lossy().into_owned(),
                    p.cpu_usage(),
                    p.memory(),
                )
            })
            .collect();
        Reading {
            metric: Event {
                cpu: Some(share(cpu)),
                mem_free: Some(self.sys.available_memory().min(i64::MAX as u64)),
                mem_total: Some(self.sys.total_memory().min(i64::MAX as u64)),
                disk_free: disk.map(|d| d.0),
                disk_total: disk.map(|d| d.1),
                // To the byte per second, for the same reason.
                net_rx_bps: Some((rx as f64 / elapsed).round()),
                net_tx_bps: Some((tx as f64 / elapsed).round()),
                uptime_s: System::uptime().ok(),
                ..Event::empty(EventKind::Metric)
            },
            procs: top_processes(procs, self.top, cores),
            drives,
        }
    }

    fn detail(&mut self) -> Detail {
        #[cfg(windows)]
        let host = self.host.sample();
        // From the CPU and memory refresh that `collect` made.
        #[cfg(not(windows))]
        let host = crate::host_detail::from_sysinfo(&self.sys);
        let found = self.watch.as_mut().map(|w| w.check(Instant::now())).unwrap_or_default();
        Detail { host: Some(host), services: found.services, notices: found.notices }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_processes_are_the_busiest_as_a_fraction_of_the_machine() {
        let procs = vec![
            (1, "idle".to_string(), 0.0, 10),
            (2, "busy".to_string(), 400.0, 20),
            (3, "some".to_string(), 50.0, 30),
            (4, "\u{7}bell\n".to_string(), 50.0, 40),
        ];
        let top = top_processes(procs, 3, 8);
        let names: Vec<&str> = top.iter().filter_map(|p| p.name.as_deref()).collect();
        assert_eq!(names, ["busy", "some", "bell"]);
        assert_eq!(top[0].cpu, Some(0.5));
        assert!(top_processes(vec![(9, String::new(), 1e9, 1)], 1, 1)[0].cpu <= Some(1.0));
        // 33.33333% of one core on 7: to 0.01 % of the machine, exactly the decimal.
        assert_eq!(top_processes(vec![(9, "x".into(), 33.333_33, 1)], 1, 7)[0].cpu, Some(0.0476));
        let unnamed = top_processes(vec![(9, String::new(), 1.0, 1)], 1, 1);
        assert_eq!(unnamed[0].name.as_deref(), Some("?"));
    }

    #[test]
    fn the_system_drive_is_the_longest_matching_mount() {
        let disks = [(Path::new("/"), 1, 10), (Path::new("/home"), 2, 20)];
        assert_eq!(disk_space(disks.iter().copied(), Path::new("/")), Some((1, 10)));
        assert_eq!(disk_space(disks.iter().copied(), Path::new("/home/x")), Some((2, 20)));
    }

    #[test]
    fn a_real_reading_is_sane_and_a_valid_batch() {
        let mut c = SystemCollector::new(5).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(250));
        let r = c.collect();
        assert!((0.0..=1.0).contains(&r.metric.cpu.unwrap()));
        let free = r.metric.mem_free.unwrap();
        assert!(r.metric.mem_total.unwrap() >= free && free > 0);
        assert!(r.metric.uptime_s.unwrap() > 0);
        assert!(!r.procs.is_empty() && r.procs.len() <= 5);
        let detail = c.detail();
        let host = detail.host.clone().unwrap();
        assert!(!host.cores.is_empty(), "{host:?}");
        assert!(host.cores.iter().all(|c| (0.0..=1.0).contains(c)));
        assert!(host.swap_total >= host.swap_used);
        // Windows reports its page files where the kernel says (Wine does not).
        assert!(cfg!(windows) || host.swap_total.is_some());
        assert_eq!(host.commit_limit.is_some(), cfg!(windows));
        assert_eq!((detail.services, detail.notices), (None, vec![]), "nothing is watched");
        let batch = build_batch("test-host", r, c.detail());
        assert!(batch.validate().is_ok(), "{batch:?}");
    }

    #[test]
    fn drives_are_the_fixed_ones_each_mount_once() {
        let (c, d, e) = (Path::new("C:\\"), Path::new("D:\\"), Path::new("E:\\"));
        let drives = fixed_drives(
            [
                (c, false, 10, 100, 4_000, 0),
                (c, false, 10, 100, 4_000, 0),
                (d, true, 1, 2, 0, 0),
                (e, false, 0, 0, 0, 0),
            ]
            .into_iter(),
            2.0,
        );
        assert_eq!(drives.len(), 1, "{drives:?}");
        assert_eq!((drives[0].free, drives[0].total, drives[0].read_bps), (10, 100, Some(2_000.0)));
    }

    #[test]
    fn batch_shape() {
        let reading = Reading {
            metric: Event {
                cpu: Some(0.25),
                mem_free: Some(1 << 30),
                mem_total: Some(8 << 30),
                disk_free: Some(50 << 30),
                disk_total: Some(200 << 30),
                net_rx_bps: Some(1000.0),
                net_tx_bps: Some(500.0),
                uptime_s: Some(7200),
                ..Event::empty(EventKind::Metric)
            },
            procs: top_processes(vec![(42, "agent.exe".into(), 10.0, 5 << 20)], 5, 4),
            drives: vec![Drive {
                mount: "D:\\".into(),
                free: 10 << 30,
                total: 100 << 30,
                read_bps: Some(2048.0),
                write_bps: Some(0.0),
            }],
        };
        let detail = Detail {
            host: Some(Host {
                cores: vec![0.1, 1.0, 0.0, 0.3656],
                swap_used: Some(0),
                swap_total: Some(2 << 30),
                commit_used: None,
                commit_limit: None,
            }),
            services: Some(vec![Service {
                name: "Spooler".into(),
                display_name: Some("Print Spooler".into()),
                state: protocol::ServiceState::Stopped,
                start: Some(protocol::StartMode::Auto),
            }]),
            notices: vec![Notice {
                ts: "2025-11-12T11:59:58Z".into(),
                kind: protocol::NoticeKind::Service,
                level: protocol::NoticeLevel::Warning,
                source: "Spooler".into(),
                code: None,
                message: "stopped (was running)".into(),
            }],
        };
        let bare = build_batch("pc-7", reading.clone(), Detail::default());
        assert_eq!((bare.host, bare.services, bare.notices), (None, None, None));
        let batch = build_batch("pc-7", reading, detail);
        assert!(batch.validate().is_ok(), "{batch:?}");
        insta::assert_json_snapshot!(batch, {
            ".ts" => "[ts]",
            ".batch_id" => "[uuid]",
            ".platform" => "[os]",
            ".agent.version" => "[version]",
            ".agent.uptime_s" => "[uptime]",
        });
    }
}
