//! A small SVG of one autoscaling scenario: the predicted step function
//! (shifted by the measured metric latency), the HPA's desired replicas and
//! the Ready pods, over seconds since the load started.

use std::fmt::Write;

use crate::judges::scaling_timeline::Sample;
use cbam_model::fixtures::Step;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 320.0;
const MARGIN: f64 = 40.0;

struct Frame {
    t_max: f64,
    r_max: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        MARGIN + t / self.t_max * (WIDTH - 2.0 * MARGIN)
    }
    fn y(&self, r: f64) -> f64 {
        HEIGHT - MARGIN - r / self.r_max * (HEIGHT - 2.0 * MARGIN)
    }
    /// A step polyline through (t, value) points.
    fn steps(&self, points: &[(f64, f64)]) -> String {
        let mut out = String::new();
        let mut last: Option<f64> = None;
        for &(t, v) in points {
            if let Some(prev) = last {
                let _ = write!(out, "{:.1},{:.1} ", self.x(t), self.y(prev));
            }
            let _ = write!(out, "{:.1},{:.1} ", self.x(t), self.y(v));
            last = Some(v);
        }
        out
    }
}

/// `latency`: seconds from load start to the first observed scale-up, where
/// the predicted timeline is anchored (None: not anchored, not drawn).
pub(crate) fn svg(title: &str, start: i32, predicted: &[Step], samples: &[Sample], latency: Option<f64>) -> String {
    let t_end = samples.last().map_or(1.0, |s| s.at).max(1.0);
    let r_max = samples
        .iter()
        .map(|s| s.desired.max(s.ready))
        .chain(predicted.iter().map(|s| s.replicas))
        .max()
        .unwrap_or(start);
    let f = Frame { t_max: t_end, r_max: f64::from(r_max + 1) };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{MARGIN}\" y=\"18\" font-size=\"13\">{}</text>\n",
        escape(title)
    );
    let (x0, y0) = (f.x(0.0), f.y(0.0));
    let _ = writeln!(svg, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"black\"/>", f.x(t_end));
    let _ = writeln!(svg, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>", f.y(f.r_max));
    for r in (0..=r_max).step_by(3) {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{r}</text>",
            x0 - 4.0,
            f.y(f64::from(r)) + 4.0
        );
    }
    let mut t = 0.0;
    while t <= t_end {
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.0}s</text>", f.x(t), y0 + 14.0);
        t += 60.0;
    }
    if let Some(latency) = latency {
        let mut points = vec![(0.0, f64::from(start))];
        points.extend(predicted.iter().map(|s| (latency + f64::from(s.at), f64::from(s.replicas))));
        points.push((t_end, points.last().map_or(f64::from(start), |p| p.1)));
        let points: Vec<_> = points.into_iter().filter(|(t, _)| *t <= t_end).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"#bbb\" stroke-dasharray=\"8 4\" stroke-width=\"7\" points=\"{}\"/>",
            f.steps(&points)
        );
    }
    let desired: Vec<(f64, f64)> = samples.iter().map(|s| (s.at, f64::from(s.desired))).collect();
    let ready: Vec<(f64, f64)> = samples.iter().map(|s| (s.at, f64::from(s.ready))).collect();
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>",
        f.steps(&desired)
    );
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1.5\" points=\"{}\"/>",
        f.steps(&ready)
    );
    let legend = [("#bbb", "predicted (from first scale-up)"), ("#1f77b4", "HPA desired"), ("#2ca02c", "Ready pods")];
    for (k, (color, label)) in legend.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "three legend rows")]
        let y = 34.0 + 14.0 * k as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{label}</text>",
            MARGIN + 10.0,
            y - 4.0,
            MARGIN + 30.0,
            y
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_prediction_desired_and_ready() {
        let samples: Vec<Sample> = (0..=120)
            .step_by(2)
            .map(|t| Sample {
                from: f64::from(t),
                at: f64::from(t),
                desired: if t < 30 { 3 } else { 5 },
                ready: 3,
                demand: None,
            })
            .collect();
        let svg = svg(
            "active-runs <x>",
            3,
            &[Step { at: 0, replicas: 5 }, Step { at: 60, replicas: 8 }],
            &samples,
            Some(30.0),
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("active-runs &lt;x&gt;"));
        let without = super::svg("t", 3, &[], &samples, None);
        assert_eq!(without.matches("<polyline").count(), 2);
    }
}
