//! Downsampled tiers: each agent's metric and process readings summed per minute and per hour,
//! so that a chart over days or a year reads a few hundred rows instead of every reading.
//!
//! Buckets hold sums, counts and maxima rather than averages, so that a late batch (from an
//! agent's queue) adds into the bucket it belongs to, and buckets merge into a chart's coarser
//! steps exactly. Both stores keep the same tables; this is the arithmetic they share.

use protocol::Event;
use std::collections::BTreeMap;

/// Bucket widths of the tiers in ms, finest first: a minute and an hour.
pub(crate) const TIERS: [i64; 2] = [60_000, 3_600_000];

/// The coarsest tier whose buckets fit in one step of a chart, or `None` when only the raw
/// readings are fine enough. A step that is not a whole number of buckets puts each bucket in
/// the step where it starts.
pub(crate) fn tier_for(step_ms: i64) -> Option<i64> {
    TIERS.iter().rev().copied().find(|&tier| tier <= step_ms)
}

/// The start of the `tier` bucket holding `ts_ms`.
pub(crate) fn bucket_start(tier: i64, ts_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(tier)
}

/// The sum, count and maximum of the readings of one figure in one bucket.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Sum {
    pub(crate) sum: f64,
    pub(crate) n: i64,
    pub(crate) max: Option<f64>,
}

impl Sum {
    pub(crate) fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.merge(Sum { sum: v, n: 1, max: Some(v) });
        }
    }

    pub(crate) fn merge(&mut self, other: Sum) {
        self.sum += other.sum;
        self.n += other.n;
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    pub(crate) fn avg(self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// cpu, memory used and total, disk used and total, network in and out.
pub(crate) type MetricSums = [Sum; 7];
/// cpu and resident memory.
pub(crate) type ProcSums = [Sum; 2];

/// A metric event's figures in [`MetricSums`] order; with a total unknown, "used" is unknown.
pub(crate) fn metric_values(m: &Event) -> [Option<f64>; 7] {
    let f = |v: Option<u64>| v.map(|v| v as f64);
    let used = |total: Option<u64>, free: Option<u64>| Some(total? as f64 - free? as f64);
    [
        m.cpu,
        used(m.mem_total, m.mem_free),
        f(m.mem_total),
        used(m.disk_total, m.disk_free),
        f(m.disk_total),
        m.net_rx_bps,
        m.net_tx_bps,
    ]
}

/// What one process reading adds to its buckets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcReading {
    pub(crate) name: String,
    pub(crate) cpu: Option<f64>,
    pub(crate) rss: Option<f64>,
}

impl ProcReading {
    /// The reading of a `proc` event; `None` for any other event, or one without a name, which
    /// no history can ask for.
    pub(crate) fn of(e: &Event) -> Option<Self> {
        let name = e.name.clone().filter(|_| e.is_proc())?;
        Some(Self { name, cpu: e.cpu, rss: e.rss.map(|r| r as f64) })
    }
}

/// Some batches of one agent, summed per tier and bucket: what a store adds to its tables.
#[derive(Debug, Default)]
pub(crate) struct Rollup {
    /// By (tier, bucket start).
    pub(crate) metrics: BTreeMap<(i64, i64), MetricSums>,
    /// By (tier, process name, bucket start).
    pub(crate) procs: BTreeMap<(i64, String, i64), ProcSums>,
}

impl Rollup {
    pub(crate) fn add_metric(&mut self, ts_ms: i64, m: &Event) {
        let values = metric_values(m);
        for tier in TIERS {
            let sums = self.metrics.entry((tier, bucket_start(tier, ts_ms))).or_default();
            for (sum, v) in sums.iter_mut().zip(values) {
                sum.add(v);
            }
        }
    }

    pub(crate) fn add_proc(&mut self, ts_ms: i64, p: &ProcReading) {
        for tier in TIERS {
            let key = (tier, p.name.clone(), bucket_start(tier, ts_ms));
            let [cpu, rss] = self.procs.entry(key).or_default();
            cpu.add(p.cpu);
            rss.add(p.rss);
        }
    }

    /// Every metric and process event of a batch taken at `ts_ms`.
    pub(crate) fn add_batch(&mut self, ts_ms: i64, events: &[Event]) {
        for e in events {
            if e.is_metric() {
                self.add_metric(ts_ms, e);
            } else if let Some(p) = ProcReading::of(e) {
                self.add_proc(ts_ms, &p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::EventKind;

    #[test]
    fn the_tier_is_the_coarsest_that_fits_a_step() {
        assert_eq!(tier_for(5_000), None);
        assert_eq!(tier_for(60_000), Some(60_000));
        assert_eq!(tier_for(59 * 60_000), Some(60_000));
        assert_eq!(tier_for(6 * 3_600_000), Some(3_600_000));
    }

    #[test]
    fn batches_sum_into_the_buckets_of_each_tier() {
        let mut r = Rollup::default();
        let metric = |cpu| Event { cpu: Some(cpu), ..Event::empty(EventKind::Metric) };
        // 00:59:30 and 01:00:10 (a late one first): two minutes, two hours.
        r.add_batch(3_610_000, &[metric(0.5), Event::process(1, "a.exe", 0.25, 100)]);
        r.add_batch(3_570_000, &[metric(0.25), Event::process(1, "a.exe", 0.75, 300)]);
        r.add_batch(3_575_000, &[metric(0.5), Event::empty(EventKind::Proc)]);
        let cpu = |tier, bucket| r.metrics[&(tier, bucket)][0];
        assert_eq!(cpu(60_000, 3_540_000), Sum { sum: 0.75, n: 2, max: Some(0.5) });
        assert_eq!(cpu(60_000, 3_600_000), Sum { sum: 0.5, n: 1, max: Some(0.5) });
        assert_eq!(cpu(3_600_000, 0).n, 2);
        assert_eq!(r.metrics[&(60_000, 3_540_000)][1].n, 0, "no memory figures, no memory sum");
        let [cpu, rss] = r.procs[&(3_600_000, "a.exe".to_owned(), 0)];
        assert_eq!((cpu.avg(), rss.avg(), cpu.max), (Some(0.75), Some(300.0), Some(0.75)));
        assert_eq!(r.procs.len(), 4, "a process without a name is not summed");
    }
}
