//! Driving a server with wrk and measuring the CPU it took.

use super::*;

/// Each wrk thread streams its own file of requests, all of one length (the third argument is
/// the number of the first file, so that several wrk processes share one pool). `init` only opens the
/// file: wrk starts its first thread while it still runs `init` for the others, so loading
/// there would give that thread a head start. A request is never sent twice unless a file runs
/// out, which `wrapped` reports.
pub(crate) const WRK_SCRIPT: &str = r#"
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  size = tonumber(args[2])
  file = assert(io.open(args[1] .. (id + tonumber(args[3])) .. ".bin", "rb"))
  file:setvbuf("full", 1048576)
  records = file:seek("end") / size
  file:seek("set", 0)
  left, issued, wrapped = records, 0, 0
end

function request()
  if left == 0 then
    file:seek("set", 0)
    left = records
    wrapped = wrapped + 1
  end
  left = left - 1
  issued = issued + 1
  return file:read(size)
end

function done(summary, latency, requests)
  local issued, wrapped = 0, 0
  for _, t in ipairs(threads) do
    issued = issued + t:get("issued")
    wrapped = wrapped + t:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"issued":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, issued, wrapped))
end
"#;

/// What the script's `done` prints; times in microseconds.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WrkSummary {
    pub(crate) requests: u64,
    pub(crate) duration_us: u64,
    pub(crate) connect: u64,
    pub(crate) read: u64,
    pub(crate) write: u64,
    /// Responses with a status of 400 or more.
    pub(crate) status: u64,
    pub(crate) timeout: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    /// Requests taken from the pool, sent or about to be; the first one only checks the script.
    pub(crate) issued: u64,
    pub(crate) wrapped: u64,
}

impl WrkSummary {
    /// Several wrk processes run side by side as one load: counts add up, and the latency
    /// figures are the worst of them (their percentiles cannot be merged exactly).
    pub(crate) fn combine(all: &[WrkSummary]) -> WrkSummary {
        let sum = |f: fn(&WrkSummary) -> u64| all.iter().map(f).sum();
        let max = |f: fn(&WrkSummary) -> u64| all.iter().map(f).max().unwrap_or(0);
        WrkSummary {
            requests: sum(|w| w.requests),
            duration_us: max(|w| w.duration_us),
            connect: sum(|w| w.connect),
            read: sum(|w| w.read),
            write: sum(|w| w.write),
            status: sum(|w| w.status),
            timeout: sum(|w| w.timeout),
            p50_us: max(|w| w.p50_us),
            p99_us: max(|w| w.p99_us),
            max_us: max(|w| w.max_us),
            issued: sum(|w| w.issued),
            wrapped: sum(|w| w.wrapped),
        }
    }

    pub(crate) fn failed(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }

    pub(crate) fn acknowledged(&self) -> u64 {
        self.requests - self.status
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) wrk: WrkSummary,
    /// CPU time of this process (both servers, the writer thread) per second of the run.
    pub(crate) server_cores: f64,
    /// The same for the backend's SQLite writer thread alone.
    pub(crate) writer_cores: f64,
    /// Share of all cores that were busy, wrk included.
    pub(crate) machine_busy: f64,
}

impl Run {
    pub(crate) fn seconds(&self) -> f64 {
        self.wrk.duration_us as f64 / 1e6
    }

    pub(crate) fn rps(&self) -> f64 {
        self.wrk.requests as f64 / self.seconds().max(1e-6)
    }

    pub(crate) fn cpu_us_per_request(&self) -> f64 {
        self.server_cores * 1e6 / self.rps().max(1.0)
    }
}

/// One wrk per address, all at once, splitting the threads and connections between them; each
/// streams its own files of the pool.
pub(crate) fn measure(
    opts: &Options,
    addrs: &[SocketAddr],
    pool: &Pool,
    script: &Path,
) -> anyhow::Result<Run> {
    let n = addrs.len();
    let threads = opts.threads / n;
    let before = CpuSample::now()?;
    let children = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            Command::new("wrk")
                .arg(format!("--threads={threads}"))
                .arg(format!("--connections={}", opts.connections / n))
                .arg(format!("--duration={}s", opts.seconds))
                .arg("--script")
                .arg(script)
                .arg(format!("http://{addr}/api/ingest"))
                .arg("--")
                .arg(&pool.prefix)
                .arg(pool.record_len.to_string())
                .arg((i * threads).to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("running wrk")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut summaries = Vec::new();
    for child in children {
        let output = child.wait_with_output().context("waiting for wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("wrk failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("BENCH "))
            .with_context(|| format!("wrk printed no summary:\n{stdout}"))?;
        summaries.push(serde_json::from_str::<WrkSummary>(line).context("reading wrk's summary")?);
    }
    let after = CpuSample::now()?;
    let wrk = WrkSummary::combine(&summaries);
    let ticks = |f: fn(&CpuSample) -> u64| f(&after).saturating_sub(f(&before)) as f64;
    let seconds = wrk.duration_us as f64 / 1e6;
    Ok(Run {
        server_cores: ticks(|c| c.process) / TICKS_PER_SECOND / seconds,
        writer_cores: ticks(|c| c.writer) / TICKS_PER_SECOND / seconds,
        machine_busy: ticks(|c| c.busy) / ticks(|c| c.total).max(1.0),
        wrk,
    })
}

/// `/proc` counts CPU time in USER_HZ, which Linux fixes at 100 for user space.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub(crate) struct CpuSample {
    pub(crate) process: u64,
    pub(crate) writer: u64,
    pub(crate) busy: u64,
    pub(crate) total: u64,
}

impl CpuSample {
    pub(crate) fn now() -> anyhow::Result<Self> {
        let process = cpu_ticks(&std::fs::read_to_string("/proc/self/stat")?);
        // The writer thread alone: near one core means the single writer is the limit.
        let mut writer = 0;
        for task in std::fs::read_dir("/proc/self/task")?.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if stat.contains("(sqlite-writer)") {
                writer += cpu_ticks(&stat);
            }
        }
        let machine = std::fs::read_to_string("/proc/stat")?;
        let cpu: Vec<u64> = machine
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let total: u64 = cpu.iter().sum();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        Ok(Self { process, writer, busy: total - idle, total })
    }
}

/// utime + stime from a `/proc/.../stat` line; fields are counted after the command name, which
/// may hold spaces.
pub(crate) fn cpu_ticks(stat: &str) -> u64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}
