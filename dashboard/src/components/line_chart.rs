//! An SVG line chart with axes and a hover read-out of exact values and local times.

use crate::chart::{Frame, Point, downsample, line_path, nearest};
use crate::format;
use dioxus::prelude::*;
use std::rc::Rc;

const W: f64 = 800.0;
const H: f64 = 180.0;
/// Points per line at most: two per horizontal pixel of the drawing.
const MAX_BUCKETS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Percent,
    Bytes,
    Rate,
}

impl Unit {
    pub(crate) fn show(self, v: Option<f64>) -> String {
        match self {
            Unit::Percent => format::percent(v),
            Unit::Bytes => v.map(format::bytes).unwrap_or_else(|| "–".to_owned()),
            Unit::Rate => format::rate(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub label: String,
    /// CSS class that colours the line.
    pub class: String,
    pub points: Vec<Point>,
}

#[component]
pub fn LineChart(
    title: String,
    lines: Vec<Line>,
    t0: i64,
    t1: i64,
    y_max: f64,
    unit: Unit,
    /// Readings further apart than this are not joined.
    max_gap_ms: i64,
    offset_min: i32,
) -> Element {
    let mut hover = use_signal(|| None::<i64>);
    let mut element = use_signal(|| None::<Rc<MountedData>>);
    let frame = Frame { width: W, height: H, t0, t1, y_max };
    let drawn: Vec<(Line, String)> = lines
        .iter()
        .map(|l| {
            let pts = downsample(&l.points, MAX_BUCKETS);
            let d = line_path(&pts, &frame, max_gap_ms);
            (l.clone(), d)
        })
        .collect();
    let span = t1 - t0;
    let x_labels = [t0, t0 + span / 2, t1].map(|t| format::axis_time(t, offset_min, span));
    let y_labels = [y_max, y_max / 2.0].map(|v| unit.show(Some(v)));
    let latest: Vec<String> = lines
        .iter()
        .map(|l| {
            let last = l.points.iter().rev().find_map(|p| p.1);
            format!("{} {}", l.label, unit.show(last))
        })
        .collect();
    let summary = format!("{title}: latest {}", latest.join(", "));
    let empty = lines.iter().all(|l| l.points.iter().all(|p| p.1.is_none()));
    let readout = hover().map(|t| {
        let when =
            lines.iter().find_map(|l| nearest(&l.points, t).map(|i| l.points[i].0)).unwrap_or(t);
        let values: Vec<String> = lines
            .iter()
            .map(|l| {
                let v = nearest(&l.points, t).and_then(|i| l.points[i].1);
                format!("{} {}", l.label, unit.show(v))
            })
            .collect();
        (frame.x(when), format::date_time(when, offset_min), values)
    });
    rsx! {
        figure { class: "chart",
            figcaption {
                span { class: "title", "{title}" }
                for (l, _) in drawn.iter() {
                    span { class: "key {l.class}", "{l.label}" }
                }
            }
            div { class: "plot",
                svg {
                    view_box: "0 0 {W} {H}",
                    preserve_aspect_ratio: "none",
                    role: "img",
                    "aria-label": "{summary}",
                    onmounted: move |e| element.set(Some(e.data())),
                    onmouseleave: move |_| hover.set(None),
                    onmousemove: move |e| {
                        let x = e.element_coordinates().x;
                        async move {
                            let width = match element.peek().clone() {
                                Some(m) => m.get_client_rect().await.map(|r| r.width()).unwrap_or(W),
                                None => W,
                            };
                            hover.set(Some(frame.t_at(x / width.max(1.0) * W)));
                        }
                    },
                    line { class: "grid", x1: "0", x2: "{W}", y1: "{H / 2.0}", y2: "{H / 2.0}" }
                    line { class: "grid", x1: "0", x2: "{W}", y1: "0.5", y2: "0.5" }
                    for (l, d) in drawn.iter() {
                        path { class: "line {l.class}", d: "{d}" }
                    }
                    if let Some((x, _, _)) = &readout {
                        line { class: "cursor", x1: "{x}", x2: "{x}", y1: "0", y2: "{H}" }
                    }
                }
                span { class: "y top", "{y_labels[0]}" }
                span { class: "y mid", "{y_labels[1]}" }
                if empty {
                    span { class: "nodata", "No readings in this range" }
                }
            }
            div { class: "x-axis",
                for label in x_labels {
                    span { "{label}" }
                }
            }
            if let Some((_, when, values)) = readout {
                p { class: "readout", "aria-live": "polite",
                    time { "{when}" }
                    for v in values {
                        span { "{v}" }
                    }
                }
            }
        }
    }
}
