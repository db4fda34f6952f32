//! What the agent costs the machine it watches: CPU per tick with 300 processes, and the
//! resident memory and CPU share of the real binary at the default 5 s interval.
//!
//! `cargo bench -p agent --bench footprint` (Linux; reads /proc). `FOOTPRINT_SECONDS` sets the
//! length of the steady-state run (default 60); `FOOTPRINT_BASELINE=<path of another agent
//! binary>` runs that one beside this build over the same seconds, for a side-by-side figure.

use agent::collect::{Collector, SystemCollector};
use harness::{SECRET, TOKEN, TestBackend};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// utime + stime of a process, in seconds (clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tick_cost() {
    let running = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    let extra = 300usize.saturating_sub(running);
    let _sleepers = Sleepers(
        (0..extra)
            .map(|_| Command::new("sleep").arg("600").stdout(Stdio::null()).spawn().unwrap())
            .collect(),
    );
    let mut collector = SystemCollector::new(5).unwrap();
    let me = std::process::id();
    let mut walls = Vec::new();
    let cpu_before = cpu_seconds(me);
    const TICKS: usize = 40;
    for _ in 0..TICKS {
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let reading = collector.collect();
        walls.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!reading.procs.is_empty());
    }
    let cpu_ms = (cpu_seconds(me) - cpu_before) * 1000.0 / TICKS as f64;
    println!(
        "tick with {} processes: median {:.2} ms wall, max {:.2} ms; {:.2} ms CPU per tick (mean)",
        running + extra,
        median(walls.clone()),
        walls.iter().copied().fold(0.0, f64::max),
        cpu_ms
    );
}

/// Runs each agent binary at the default 5 s interval, all at once against backends of their
/// own, so that a baseline build sees the same noise as this one.
fn steady_state(seconds: u64, agents: &[(&str, std::path::PathBuf)]) {
    let dir = tempfile::tempdir().unwrap();
    let running: Vec<(&str, TestBackend, Child)> = agents
        .iter()
        .enumerate()
        .map(|(i, (label, exe))| {
            let backend = TestBackend::start_with(&[("RUST_LOG", "warn")]);
            let agent = Command::new(exe)
                .env_clear()
                .env("API_URL", backend.url(""))
                .env("API_TOKEN", TOKEN)
                .env("HMAC_SECRET", SECRET)
                .env("AGENT_ID", format!("footprint-{i}"))
                .env("DATA_DIR", dir.path().join(i.to_string()))
                .env("RUST_LOG", "warn")
                .spawn()
                .unwrap();
            (*label, backend, agent)
        })
        .collect();
    // The first tick and start-up are not the steady state.
    std::thread::sleep(Duration::from_secs(6));
    let t0 = Instant::now();
    let cpu0: Vec<f64> = running.iter().map(|(_, _, a)| cpu_seconds(a.id())).collect();
    std::thread::sleep(Duration::from_secs(seconds));
    let elapsed = t0.elapsed().as_secs_f64();
    for ((label, _backend, agent), cpu0) in running.into_iter().zip(cpu0) {
        let pid = agent.id();
        let share = (cpu_seconds(pid) - cpu0) / elapsed * 100.0;
        println!(
            "{label} agent binary at a 5 s interval over {seconds} s: {share:.3}% of one core, \
             resident {:.1} MiB (peak {:.1} MiB)",
            status_kib(pid, "VmRSS:") as f64 / 1024.0,
            status_kib(pid, "VmHWM:") as f64 / 1024.0,
        );
        let mut agent = agent;
        let _ = agent.kill();
        let _ = agent.wait();
    }
}

fn main() {
    let seconds =
        std::env::var("FOOTPRINT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    tick_cost();
    let mut agents = vec![("this", std::path::PathBuf::from(env!("CARGO_BIN_EXE_agent")))];
    if let Some(baseline) = std::env::var_os("FOOTPRINT_BASELINE") {
        agents.push(("baseline", baseline.into()));
    }
    steady_state(seconds, &agents);
}
