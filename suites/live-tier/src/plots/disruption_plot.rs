//! A small SVG of one disruption under load, over seconds since the load
//! started: on top, requests per second (answered, and failed by kind, both
//! paths together); below, the p99 latency of each second and the Ready
//! replicas; at the bottom, the Ready replicas on each node (where a drain
//! or an upgrade moved them); dashed lines at the phase markers.

use std::collections::BTreeMap;
use std::fmt::Write;

use cbam_prober::summary::per_second;
use cbam_prober::{Kind, Record};

use crate::judges::disruption::Evidence;

const WIDTH: f64 = 720.0;
const PANEL: f64 = 160.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 50.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;

fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Ok => "#2a9d3c",
        Kind::Connect => "#d62728",
        Kind::Tls => "#9467bd",
        Kind::Reset => "#ff7f0e",
        Kind::Timeout => "#8c564b",
        Kind::ServerError => "#e377c2",
        Kind::TooMany => "#bcbd22",
        Kind::ClientError => "#7f7f7f",
    }
}

/// One colour per node, in name order (repeating past eight).
const NODE_COLOURS: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

struct Axis {
    t_max: f64,
}

impl Axis {
    fn x(&self, seconds: f64) -> f64 {
        LEFT + seconds / self.t_max * (WIDTH - LEFT - RIGHT)
    }
}

/// Points of a polyline in a panel whose top is `top`, scaled to `max`.
fn y(top: f64, value: f64, max: f64) -> f64 {
    top + PANEL - value / max.max(1e-9) * PANEL
}

pub(crate) fn svg(title: &str, ev: &Evidence) -> String {
    let all: Vec<Record> = ev.ingress.iter().chain(ev.service.iter()).cloned().collect();
    let seconds = per_second(&all);
    let mut latency: BTreeMap<u64, f64> = BTreeMap::new();
    for s in per_second(&ev.service) {
        if let Some(p) = s.latency_p99_ms {
            latency.insert(s.second, p);
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "seconds and counts are small")]
    let t_max =
        seconds.last().map_or(1.0, |s| s.second as f64 + 1.0).max(ev.phases.last().map_or(1.0, |p| p.0 / 1000.0));
    let axis = Axis { t_max };
    #[expect(clippy::cast_precision_loss, reason = "counts are small")]
    let rate_max = seconds.iter().map(|s| (s.ok + s.failed.values().sum::<usize>()) as f64).fold(1.0, f64::max);
    let latency_max = latency.values().copied().fold(1.0, f64::max);
    #[expect(clippy::cast_precision_loss, reason = "replica counts are small")]
    let ready_max = ev.ready.iter().map(|(_, n)| *n as f64).fold(1.0, f64::max) + 1.0;
    let (top_a, top_b, top_c) = (TOP, TOP + PANEL + GAP, TOP + 2.0 * (PANEL + GAP));
    let height = top_c + PANEL + 40.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"18\" font-size=\"13\">{}</text>\n",
        escape(title)
    );
    for (top, label) in [
        (top_a, format!("requests/s (max {rate_max:.0})")),
        (top_b, format!("Service p99 ms (max {latency_max:.0}), Ready replicas (black)")),
        (top_c, "Ready replicas per node".to_owned()),
    ] {
        let _ = writeln!(
            out,
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{}\" height=\"{PANEL}\" fill=\"none\" stroke=\"black\"/>\n<text x=\"{LEFT}\" y=\"{}\">{}</text>",
            WIDTH - LEFT - RIGHT,
            top - 4.0,
            escape(&label)
        );
    }
    // Top: answered (green line), failures as stacked bars by kind.
    let bar = (WIDTH - LEFT - RIGHT) / t_max;
    let mut answered = String::new();
    for s in &seconds {
        #[expect(clippy::cast_precision_loss, reason = "seconds and counts are small")]
        let (t, ok) = (s.second as f64, s.ok as f64);
        let _ = write!(answered, "{:.1},{:.1} ", axis.x(t + 0.5), y(top_a, ok, rate_max));
        let mut base = 0.0;
        for (kind, n) in &s.failed {
            #[expect(clippy::cast_precision_loss, reason = "counts are small")]
            let n = *n as f64;
            let (y0, y1) = (y(top_a, base, rate_max), y(top_a, base + n, rate_max));
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{n} {kind:?} at {t} s</title></rect>",
                axis.x(t),
                bar.max(1.0),
                (y0 - y1).max(1.0),
                colour(*kind)
            );
            base += n;
        }
    }
    let _ = writeln!(out, "<polyline points=\"{answered}\" fill=\"none\" stroke=\"{}\"/>", colour(Kind::Ok));
    // Bottom: p99 latency (blue), Ready replicas (black steps).
    #[expect(clippy::cast_precision_loss, reason = "seconds are small")]
    let p99: String = latency
        .iter()
        .map(|(t, p)| format!("{:.1},{:.1} ", axis.x(*t as f64 + 0.5), y(top_b, *p, latency_max)))
        .collect();
    let _ = writeln!(out, "<polyline points=\"{p99}\" fill=\"none\" stroke=\"#1f77b4\"/>");
    let mut ready = String::new();
    let mut last: Option<f64> = None;
    for (at, n) in &ev.ready {
        #[expect(clippy::cast_precision_loss, reason = "replica counts are small")]
        let n = *n as f64;
        let x = axis.x(at / 1000.0);
        if let Some(prev) = last {
            let _ = write!(ready, "{x:.1},{:.1} ", y(top_b, prev, ready_max));
        }
        let _ = write!(ready, "{x:.1},{:.1} ", y(top_b, n, ready_max));
        last = Some(n);
    }
    let _ = writeln!(out, "<polyline points=\"{ready}\" fill=\"none\" stroke=\"black\" stroke-width=\"1.5\"/>");
    let _ =
        writeln!(out, "<text x=\"{:.1}\" y=\"{:.1}\">{ready_max:.0} Ready</text>", WIDTH - RIGHT + 4.0, top_b + 10.0);
    per_node(&mut out, &axis, top_c, ev, ready_max);
    // Phase markers across every panel.
    for (n, (at, label)) in ev.phases.iter().enumerate() {
        let x = axis.x(at / 1000.0);
        #[expect(clippy::cast_precision_loss, reason = "a handful of phases")]
        let label_y = top_a + 12.0 + (n % 4) as f64 * 12.0;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{top_a}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"grey\" stroke-dasharray=\"4 3\"/>\n<text x=\"{:.1}\" y=\"{label_y:.1}\" fill=\"grey\">{}</text>",
            top_c + PANEL,
            x + 3.0,
            escape(label)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{t_max:.0} s</text>",
        top_c + PANEL + 16.0,
        WIDTH - RIGHT,
        top_c + PANEL + 16.0
    );
    out.push_str("</svg>\n");
    out
}

/// The panel at `top`: one step line per node of its Ready replicas (0
/// where a sample has none on it), the node's name in its colour.
fn per_node(out: &mut String, axis: &Axis, top: f64, ev: &Evidence, max: f64) {
    let nodes: std::collections::BTreeSet<&str> =
        ev.ready_by_node.iter().flat_map(|(_, per)| per.keys().map(String::as_str)).collect();
    for (k, node) in nodes.iter().enumerate() {
        let colour = NODE_COLOURS[k % NODE_COLOURS.len()];
        let mut line = String::new();
        let mut last: Option<f64> = None;
        for (at, per) in &ev.ready_by_node {
            #[expect(clippy::cast_precision_loss, reason = "replica counts are small")]
            let n = per.get(*node).copied().unwrap_or(0) as f64;
            let x = axis.x(at / 1000.0);
            if let Some(prev) = last {
                let _ = write!(line, "{x:.1},{:.1} ", y(top, prev, max));
            }
            let _ = write!(line, "{x:.1},{:.1} ", y(top, n, max));
            last = Some(n);
        }
        #[expect(clippy::cast_precision_loss, reason = "a handful of nodes")]
        let label_y = top + 12.0 + k as f64 * 12.0;
        let _ = writeln!(
            out,
            "<polyline points=\"{line}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"><title>{}</title></polyline>\n<text x=\"{:.1}\" y=\"{label_y:.1}\" fill=\"{colour}\">{}</text>",
            escape(node),
            LEFT + 4.0,
            escape(node)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_failures_phases_and_ready_replicas() {
        let record = |seq: u64, at: f64, kind: Kind| Record {
            seq,
            scheduled_ms: at,
            sent_ms: at,
            latency_ms: 3.0,
            kind,
            status: None,
            pod: None,
            error: None,
            stream: cbam_prober::Stream::Get,
            draining: false,
            local_port: None,
        };
        let ev = Evidence {
            service: (0..40)
                .map(|n| record(n, n as f64 * 100.0, if n == 20 { Kind::Connect } else { Kind::Ok }))
                .collect(),
            ready: vec![(0.0, 3), (1500.0, 4), (3000.0, 3)],
            ready_by_node: vec![
                (0.0, [("agent1".to_owned(), 2), ("server".to_owned(), 1)].into()),
                (1500.0, [("agent<3>".to_owned(), 2), ("server".to_owned(), 2)].into()),
            ],
            phases: vec![(0.0, "load".into()), (1000.0, "restart <x>".into())],
            ..Evidence::default()
        };
        let svg = svg("rollout & co", &ev);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("1 Connect at 2 s"), "a failure is drawn where it happened");
        assert!(svg.contains("restart &lt;x&gt;") && svg.contains("rollout &amp; co"));
        assert!(svg.contains("5 Ready"));
        for node in ["agent1", "agent&lt;3&gt;", "server"] {
            assert!(svg.contains(&format!("<title>{node}</title>")), "a line per node: {node}");
        }
    }
}
