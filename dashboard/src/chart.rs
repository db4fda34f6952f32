//! Chart geometry: series to SVG path data, computed in Rust so that SSR and the browser agree.

/// One reading: unix milliseconds and a value, `None` where the agent sent nothing.
pub(crate) type Point = (i64, Option<f64>);

/// The drawing area and the ranges it maps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Frame {
    pub width: f64,
    pub height: f64,
    pub t0: i64,
    pub t1: i64,
    pub y_max: f64,
}

impl Frame {
    pub(crate) fn x(&self, t: i64) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        (t - self.t0) as f64 / span * self.width
    }

    pub(crate) fn y(&self, v: f64) -> f64 {
        let max = if self.y_max > 0.0 { self.y_max } else { 1.0 };
        self.height - (v / max).clamp(0.0, 1.0) * self.height
    }

    /// The time under a horizontal pixel position.
    pub(crate) fn t_at(&self, x: f64) -> i64 {
        let span = (self.t1 - self.t0) as f64;
        self.t0 + (x / self.width.max(1.0) * span).round() as i64
    }
}

/// SVG path data for a line that breaks wherever a value is missing or readings are more than
/// `max_gap_ms` apart, so an offline stretch shows as a gap rather than a slanted line.
pub(crate) fn line_path(points: &[Point], frame: &Frame, max_gap_ms: i64) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    let mut last_t: Option<i64> = None;
    for &(t, v) in points {
        let Some(v) = v.filter(|v| v.is_finite()) else {
            last_t = None;
            continue;
        };
        let op = match last_t {
            Some(prev) if t - prev <= max_gap_ms => 'L',
            _ => 'M',
        };
        if !d.is_empty() {
            d.push(' ');
        }
        d.push_str(&format!("{op}{:.1} {:.1}", frame.x(t), frame.y(v)));
        last_t = Some(t);
    }
    d
}

/// At most `2 * buckets` points that keep each bucket's lowest and highest value in time order,
/// so spikes survive when thousands of readings are drawn a few hundred pixels wide.
pub(crate) fn downsample(points: &[Point], buckets: usize) -> Vec<Point> {
    if buckets == 0 || points.len() <= buckets * 2 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(buckets * 2);
    for chunk in points.chunks(per) {
        let valued = chunk.iter().enumerate().filter_map(|(i, p)| p.1.map(|v| (i, v)));
        // (index in chunk, value) of the lowest and highest reading.
        let mut lo: Option<(usize, f64)> = None;
        let mut hi: Option<(usize, f64)> = None;
        for (i, v) in valued {
            if lo.is_none_or(|(_, l)| v < l) {
                lo = Some((i, v));
            }
            if hi.is_none_or(|(_, h)| v > h) {
                hi = Some((i, v));
            }
        }
        match (lo, hi) {
            (Some((a, _)), Some((b, _))) if a != b => {
                let (first, second) = if a < b { (a, b) } else { (b, a) };
                out.push(chunk[first]);
                out.push(chunk[second]);
            }
            (Some((a, _)), _) => out.push(chunk[a]),
            // A bucket with no readings at all keeps the gap visible.
            _ => out.push((chunk[0].0, None)),
        }
    }
    out
}

/// A round upper bound for a byte or rate axis: 1, 2 or 5 times a power of 1024 or 10.
pub(crate) fn nice_max(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if max <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// The reading closest in time to `t`, for the hover read-out.
pub(crate) fn nearest(points: &[Point], t: i64) -> Option<usize> {
    if points.is_empty() {
        return None;
    }
    let i = points.partition_point(|p| p.0 < t);
    let candidates = [i.checked_sub(1), (i < points.len()).then_some(i)];
    candidates.into_iter().flatten().min_by_key(|&j| (points[j].0 - t).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame { width: 100.0, height: 50.0, t0: 0, t1: 10_000, y_max: 1.0 }
    }

    #[test]
    fn paths_scale_into_the_frame() {
        let pts = [(0, Some(0.0)), (5_000, Some(0.5)), (10_000, Some(1.0))];
        assert_eq!(line_path(&pts, &frame(), 5_000), "M0.0 50.0 L50.0 25.0 L100.0 0.0");
    }

    #[test]
    fn paths_break_at_missing_values_and_long_gaps() {
        let pts = [(0, Some(0.1)), (1_000, None), (2_000, Some(0.2)), (9_000, Some(0.3))];
        assert_eq!(line_path(&pts, &frame(), 2_000), "M0.0 45.0 M20.0 40.0 M90.0 35.0");
        assert_eq!(line_path(&[], &frame(), 1), "");
    }

    #[test]
    fn values_outside_the_axis_are_clamped() {
        let pts = [(0, Some(-1.0)), (1_000, Some(3.0))];
        assert_eq!(line_path(&pts, &frame(), 5_000), "M0.0 50.0 L10.0 0.0");
    }

    #[test]
    fn downsampling_keeps_extremes_in_order() {
        let pts: Vec<Point> = (0..1000).map(|i| (i, Some((i % 10) as f64))).collect();
        let mut spiky = pts.clone();
        spiky[503].1 = Some(99.0);
        let out = downsample(&spiky, 50);
        assert!(out.len() <= 100);
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(out.iter().any(|p| p.1 == Some(99.0)));
        assert_eq!(downsample(&pts[..10], 50).len(), 10);
    }

    #[test]
    fn downsampling_keeps_empty_buckets_as_gaps() {
        let mut pts: Vec<Point> = (0..100).map(|i| (i, Some(1.0))).collect();
        for p in &mut pts[40..60] {
            p.1 = None;
        }
        let out = downsample(&pts, 10);
        assert!(out.iter().any(|p| p.1.is_none()));
    }

    #[test]
    fn nice_max_rounds_up() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7_300.0), 10_000.0);
        assert_eq!(nice_max(1_500.0), 2_000.0);
    }

    #[test]
    fn nearest_finds_the_closest_reading() {
        let pts = [(0, Some(1.0)), (10, Some(2.0)), (30, Some(3.0))];
        assert_eq!(nearest(&pts, -5), Some(0));
        assert_eq!(nearest(&pts, 14), Some(1));
        assert_eq!(nearest(&pts, 21), Some(2));
        assert_eq!(nearest(&pts, 99), Some(2));
        assert_eq!(nearest(&[], 1), None);
        assert_eq!(frame().t_at(50.0), 5_000);
    }
}
