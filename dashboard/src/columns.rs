//! Chart lines for one agent: a fetched [`Series`] with live readings appended after its end.

use crate::chart::{Point, nice_max};
use crate::store::MetricPoint;
use protocol::Series;

/// The time ranges the agent view offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    Live,
    M15,
    H1,
    H6,
    H24,
    D7,
}

impl Range {
    pub(crate) const ALL: [Range; 6] =
        [Range::Live, Range::M15, Range::H1, Range::H6, Range::H24, Range::D7];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Range::Live => "Live",
            Range::M15 => "15 min",
            Range::H1 => "1 h",
            Range::H6 => "6 h",
            Range::H24 => "24 h",
            Range::D7 => "7 days",
        }
    }

    /// The span shown; live shows the last fifteen minutes and keeps scrolling.
    pub(crate) fn span_ms(self) -> i64 {
        const MIN: i64 = 60_000;
        match self {
            Range::Live | Range::M15 => 15 * MIN,
            Range::H1 => 60 * MIN,
            Range::H6 => 360 * MIN,
            Range::H24 => 1440 * MIN,
            Range::D7 => 7 * 1440 * MIN,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Columns {
    pub cpu_avg: Vec<Point>,
    pub cpu_max: Vec<Point>,
    pub mem_used: Vec<Point>,
    pub disk_used: Vec<Point>,
    pub net_rx: Vec<Point>,
    pub net_tx: Vec<Point>,
    /// The largest memory and disk totals seen: the top of those axes.
    pub mem_axis: f64,
    pub disk_axis: f64,
    pub net_axis: f64,
}

impl Columns {
    /// `series` as fetched, then every live reading after its last bucket (`live` in time order).
    pub(crate) fn build(series: Option<&Series>, live: &[MetricPoint]) -> Self {
        let mut c = Columns::default();
        let (mut mem_total, mut disk_total) = (0f64, 0f64);
        let mut last_ms = i64::MIN;
        if let Some(s) = series {
            for (i, t) in s.t.iter().enumerate() {
                let t_ms = t * 1000;
                let at = |col: &[Option<f64>]| col.get(i).copied().flatten();
                c.cpu_avg.push((t_ms, at(&s.cpu_avg)));
                c.cpu_max.push((t_ms, at(&s.cpu_max)));
                c.mem_used.push((t_ms, at(&s.mem_used)));
                c.disk_used.push((t_ms, at(&s.disk_used)));
                c.net_rx.push((t_ms, at(&s.net_rx_bps)));
                c.net_tx.push((t_ms, at(&s.net_tx_bps)));
                mem_total = mem_total.max(at(&s.mem_total).unwrap_or(0.0));
                disk_total = disk_total.max(at(&s.disk_total).unwrap_or(0.0));
                // A bucket covers [t, t + step): live readings inside it are already counted.
                last_ms = t_ms + s.step * 1000 - 1;
            }
        }
        for p in live.iter().filter(|p| p.t_ms > last_ms) {
            c.cpu_avg.push((p.t_ms, p.cpu));
            c.cpu_max.push((p.t_ms, p.cpu));
            c.mem_used.push((p.t_ms, p.mem_used));
            c.disk_used.push((p.t_ms, p.disk_used));
            c.net_rx.push((p.t_ms, p.net_rx_bps));
            c.net_tx.push((p.t_ms, p.net_tx_bps));
            mem_total = mem_total.max(p.mem_total.unwrap_or(0.0));
            disk_total = disk_total.max(p.disk_total.unwrap_or(0.0));
        }
        let top = |col: &[Point]| col.iter().filter_map(|p| p.1).fold(0f64, f64::max);
        c.mem_axis = if mem_total > 0.0 { mem_total } else { nice_max(top(&c.mem_used)) };
        c.disk_axis = if disk_total > 0.0 { disk_total } else { nice_max(top(&c.disk_used)) };
        c.net_axis = nice_max(top(&c.net_rx).max(top(&c.net_tx)));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series {
            agent_id: "pc".into(),
            from: 0,
            to: 30,
            step: 10,
            t: vec![0, 10, 20],
            cpu_avg: vec![Some(0.1), None, Some(0.3)],
            cpu_max: vec![Some(0.2), None, Some(0.4)],
            mem_used: vec![Some(1.0), None, Some(3.0)],
            mem_total: vec![Some(8.0), None, Some(8.0)],
            disk_used: vec![None; 3],
            disk_total: vec![None; 3],
            net_rx_bps: vec![Some(100.0), None, Some(700.0)],
            net_tx_bps: vec![Some(5.0), None, Some(5.0)],
        }
    }

    fn point(t_ms: i64, cpu: f64) -> MetricPoint {
        MetricPoint {
            t_ms,
            cpu: Some(cpu),
            mem_used: Some(2.0),
            mem_total: Some(16.0),
            disk_used: None,
            disk_total: None,
            net_rx_bps: None,
            net_tx_bps: None,
        }
    }

    #[test]
    fn live_readings_append_after_the_last_bucket() {
        let live = [point(25_000, 0.9), point(30_000, 0.5), point(35_000, 0.6)];
        let c = Columns::build(Some(&series()), &live);
        let cpu: Vec<_> = c.cpu_avg.iter().map(|p| p.0).collect();
        assert_eq!(cpu, [0, 10_000, 20_000, 30_000, 35_000]);
        assert_eq!(c.cpu_avg[1].1, None);
        assert_eq!(c.mem_axis, 16.0);
        assert_eq!(c.net_axis, 1000.0);
        assert_eq!(c.disk_axis, 1.0);
    }

    #[test]
    fn without_a_series_everything_live_is_drawn() {
        let c = Columns::build(None, &[point(1, 0.1), point(2, 0.2)]);
        assert_eq!(c.cpu_max.len(), 2);
        assert_eq!(
            Columns::build(None, &[]),
            Columns { mem_axis: 1.0, disk_axis: 1.0, net_axis: 1.0, ..Default::default() }
        );
    }

    #[test]
    fn ranges_cover_what_their_labels_say() {
        assert_eq!(Range::D7.span_ms(), 604_800_000);
        assert_eq!(Range::Live.span_ms(), Range::M15.span_ms());
        assert_eq!(Range::ALL.map(Range::label)[5], "7 days");
    }
}
