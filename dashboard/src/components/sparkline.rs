//! A small line of recent values for a fleet card.

use crate::chart::{Frame, Point, line_path};
use dioxus::prelude::*;

const W: f64 = 120.0;
const H: f64 = 28.0;

#[component]
pub fn Sparkline(label: String, points: Vec<Point>, y_max: f64, class: String) -> Element {
    let (t0, t1) = match (points.first(), points.last()) {
        (Some(a), Some(b)) => (a.0, b.0.max(a.0 + 1)),
        _ => (0, 1),
    };
    let frame = Frame { width: W, height: H, t0, t1, y_max };
    // Gaps longer than a minute (an offline stretch) break the line.
    let d = line_path(&points, &frame, 60_000);
    rsx! {
        svg {
            class: "spark {class}",
            view_box: "0 0 {W} {H}",
            preserve_aspect_ratio: "none",
            role: "img",
            "aria-label": "{label}",
            path { d: "{d}" }
        }
    }
}
