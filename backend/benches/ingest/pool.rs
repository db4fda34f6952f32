//! Pre-signed requests, written to files that wrk streams.

use super::*;

/// One file per wrk thread of complete HTTP requests, each `record_len` bytes.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) prefix: String,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) record_len: usize,
}

impl Pool {
    pub(crate) fn remove(self) -> std::io::Result<()> {
        self.files.iter().try_for_each(std::fs::remove_file)
    }
}

pub(crate) fn write_pool(
    dir: &Path,
    threads: usize,
    per_thread: usize,
    round: u64,
) -> anyhow::Result<Pool> {
    let prefix = dir.join("pool-").to_str().context("the pool path is not UTF-8")?.to_owned();
    let files: Vec<PathBuf> =
        (0..threads).map(|t| PathBuf::from(format!("{prefix}{t}.bin"))).collect();
    let sig_ts = (backend::clock::now_ms() / 1000).to_string();
    let lens = std::thread::scope(|s| {
        let workers: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(t, path)| {
                let sig_ts = &sig_ts;
                s.spawn(move || write_pool_file(path, per_thread, sig_ts, round << 16 | t as u64))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("a pool writer panicked"))?)
            .collect::<anyhow::Result<Vec<usize>>>()
    })?;
    let record_len = lens[0];
    ensure!(lens.iter().all(|l| *l == record_len), "pool files have different record sizes");
    Ok(Pool { prefix, files, record_len })
}

/// Writes `count` requests and returns their common length.
pub(crate) fn write_pool_file(
    path: &Path,
    count: usize,
    sig_ts: &str,
    seed: u64,
) -> anyhow::Result<usize> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(seed);
    let mut record = Vec::with_capacity(2 * BODY_BYTES);
    let mut record_len = None;
    let first_ms = backend::clock::now_ms();
    for i in 0..count {
        let agent = rng.below(AGENTS as u64);
        let batch = batch(&mut rng, agent, first_ms + i as i64);
        let mut body = serde_json::to_vec(&batch)?;
        ensure!(body.len() <= BODY_BYTES, "a body of {} bytes exceeds BODY_BYTES", body.len());
        body.resize(BODY_BYTES, b' ');
        let signature = protocol::sign(HMAC_SECRET.as_bytes(), sig_ts, &body);
        record.clear();
        write!(
            record,
            "POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {BODY_BYTES}\r\nX-Api-Token: {API_TOKEN}\r\n\
             X-Signature-Ts: {sig_ts}\r\nX-Signature: {signature}\r\n\r\n"
        )?;
        record.extend_from_slice(&body);
        ensure!(*record_len.get_or_insert(record.len()) == record.len(), "uneven request sizes");
        out.write_all(&record)?;
    }
    out.flush()?;
    Ok(record_len.unwrap_or(0))
}

pub(crate) const PROCESS_NAMES: [&str; 10] = [
    "chrome.exe",
    "svchost.exe",
    "explorer.exe",
    "MsMpEng.exe",
    "Teams.exe",
    "OUTLOOK.EXE",
    "Code.exe",
    "dwm.exe",
    "SearchHost.exe",
    "RuntimeBroker.exe",
];

/// A batch like an agent's: one machine reading and its top processes, with a fresh batch id.
pub(crate) fn batch(rng: &mut Rng, agent: u64, ts_ms: i64) -> IngestBatch {
    let metric = Event {
        cpu: Some(rng.fraction()),
        mem_free: Some(1_000_000_000 + rng.below(15_000_000_000)),
        mem_total: Some(17_179_869_184),
        disk_free: Some(10_000_000_000 + rng.below(400_000_000_000)),
        disk_total: Some(512_110_190_592),
        net_rx_bps: Some(rng.below(100_000_000) as f64 / 10.0),
        net_tx_bps: Some(rng.below(100_000_000) as f64 / 10.0),
        uptime_s: Some(rng.below(10_000_000)),
        ..Event::empty(EventKind::Metric)
    };
    let procs = (0..PROCS_PER_BATCH).map(|_| {
        Event::process(
            4 + rng.below(60_000) as u32,
            PROCESS_NAMES[rng.below(PROCESS_NAMES.len() as u64) as usize],
            rng.fraction() / 4.0,
            1_000_000 + rng.below(2_000_000_000),
        )
    });
    IngestBatch {
        agent_id: format!("bench-host-{agent:04}"),
        ts: backend::clock::format_ms(ts_ms),
        platform: "windows".into(),
        // Time-ordered like the agent's own.
        batch_id: Some(uuid::Uuid::now_v7().to_string()),
        events: std::iter::once(metric).chain(procs).collect(),
        agent: None,
        drives: None,
        host: None,
        notices: None,
        services: None,
    }
}

/// splitmix64: enough to vary the readings, no dependency.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Agents round fractions to four digits.
    pub(crate) fn fraction(&mut self) -> f64 {
        self.below(10_001) as f64 / 10_000.0
    }
}
