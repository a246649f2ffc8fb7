//! The CPU and memory targets, pinned by behaviour (nightly): before a
//! resource scenario's load, runs put the metric just under the documented
//! target, then just over it plus the controller's tolerance, and each HPA
//! sync is judged by the controller's own rule on its own reading. The
//! HPA's status reports the utilization it computed (an integer percent)
//! in the same update as the replicas it chose from it, so every sample is
//! a test of the live target: at utilization U with the documented target
//! T, the HPA scales up exactly when U / T > 1 + tolerance.
//! - Below: U in [floor x T, (1 + tolerance) x T] for `hold_seconds` (three
//!   syncs) with minReplicas kept. A scale-up there means a target under the
//!   documented one (fail); no sample in the band means the load did not
//!   bite (not verified, never a pass).
//! - Above: more runs; the first sync that reports U / T > 1 + tolerance must
//!   already ask for more replicas. Keeping minReplicas there means a target
//!   above the documented one (fail).

use std::time::{Duration, Instant};

use super::sampler::Sampler;
use crate::context::LiveContext;
use crate::judges::hpa_reading;
use crate::traffic::https as edge;
use crate::traffic::load::Generator;
use cbam_error_chain::render as chain;
use cbam_model::fixtures::{Load, Probe, ProbeLoad, Scenario};
use cbam_model::outcome::Recorder;

/// What one phase established.
#[derive(Debug, PartialEq)]
enum Phase {
    Held(String),
    Failed(String),
    NotVerified(String),
}

/// The controller's rule and the band, for one metric.
#[derive(Debug, Clone, Copy)]
struct Band {
    min: i32,
    target: f64,
    tolerance: f64,
    floor: f64,
}

impl Band {
    /// The reading over which the documented target scales up.
    fn ceiling(self) -> f64 {
        self.target * (1.0 + self.tolerance)
    }
}

/// Under the target: judged sync by sync until it holds, fails or times out.
#[derive(Debug)]
struct Under {
    band: Band,
    hold: f64,
    deadline: f64,
    in_band_since: Option<f64>,
    seen: Vec<String>,
}

impl Under {
    fn step(&mut self, at: f64, reading: Option<f64>, desired: i32) -> Option<Phase> {
        let Band { min, target, tolerance, .. } = self.band;
        let (floor, ceiling) = (target * self.band.floor, self.band.ceiling());
        if let Some(u) = reading {
            self.seen.push(format!("{u:.0}"));
            match (u <= ceiling, desired > min) {
                (true, true) => {
                    return Some(Phase::Failed(format!(
                        "desired {desired} at {at:.0} s with the HPA reporting {u:.0}: a target under {:.0}",
                        u / (1.0 + tolerance)
                    )));
                }
                (false, false) => {
                    return Some(Phase::Failed(format!(
                        "{min} replicas kept at {at:.0} s with the HPA reporting {u:.0} (over {ceiling:.0}): a target over {target}"
                    )));
                }
                (false, true) => {
                    return Some(Phase::NotVerified(format!(
                        "the runs put the metric over the band ({u:.0} > {ceiling:.0}) and the HPA rightly scaled: recalibrate the probe's runs"
                    )));
                }
                (true, false) if u >= floor => {
                    let since = *self.in_band_since.get_or_insert(at);
                    if at - since >= self.hold {
                        return Some(Phase::Held(format!(
                            "{min} replicas from {since:.0} s to {at:.0} s, the HPA reporting {}",
                            self.seen.join(", ")
                        )));
                    }
                }
                (true, false) => self.in_band_since = None,
            }
        }
        (at > self.deadline).then(|| {
            Phase::NotVerified(format!(
                "the HPA never reported the metric in [{floor:.0}, {ceiling:.0}] for {:.0} s within {:.0} s: it read {}",
                self.hold,
                self.deadline,
                if self.seen.is_empty() { "nothing".to_owned() } else { self.seen.join(", ") }
            ))
        })
    }
}

/// Over the target: the first sync over the ceiling decides.
#[derive(Debug)]
struct Over {
    band: Band,
    deadline: f64,
    seen: Vec<String>,
}

impl Over {
    fn step(&mut self, at: f64, reading: Option<f64>, desired: i32) -> Option<Phase> {
        let Band { min, target, tolerance, .. } = self.band;
        let ceiling = self.band.ceiling();
        if let Some(u) = reading {
            self.seen.push(format!("{u:.0}"));
            if u > ceiling {
                return Some(if desired > min {
                    Phase::Held(format!(
                        "desired {desired} in the first sync reporting {u:.0}, {at:.0} s after the added runs"
                    ))
                } else {
                    Phase::Failed(format!(
                        "{min} replicas kept with the HPA reporting {u:.0} (over {ceiling:.0}): a target over {:.0}",
                        u / (1.0 + tolerance)
                    ))
                });
            }
            if desired > min {
                return Some(Phase::Failed(format!(
                    "desired {desired} at {at:.0} s with the HPA reporting {u:.0}, not over {ceiling:.0}: a target under {target}"
                )));
            }
        }
        (at > self.deadline).then(|| {
            Phase::NotVerified(format!(
                "the HPA never reported the metric over {ceiling:.0} within {:.0} s: it read {}",
                self.deadline,
                if self.seen.is_empty() { "nothing".to_owned() } else { self.seen.join(", ") }
            ))
        })
    }
}

fn load_of(probe: &ProbeLoad, run_seconds: f64, max_seconds: u64) -> Load {
    Load {
        burst: probe.runs,
        arrivals_per_minute: 0.0,
        run_seconds,
        cpu: probe.cpu,
        memory_mib: probe.memory_mib,
        max_seconds,
        until_accepted: Some(probe.runs),
    }
}

/// Judges the probe of `scenario` (a resource metric) and records a fact
/// per phase; false when a phase failed (the live target is not the
/// documented one). The runs end by themselves; the caller waits for rest.
pub(crate) async fn target_probe(
    cx: &LiveContext<'_>,
    scenario: &Scenario,
    probe: &Probe,
    r: &mut Recorder,
    object: &str,
) -> bool {
    let documented = &cx.governance.hpa;
    let (min, tolerance) = (documented.min_replicas, cx.autoscaling.hpa_tolerance);
    let Some(target) = hpa_reading::documented_target(documented, &scenario.metric) else {
        r.skip(object, &format!("{}: target", scenario.name), "a documented target", "none for this metric");
        return true;
    };
    let ceiling = target * (1.0 + tolerance);
    let floor = target * probe.floor;
    let below_subject = format!("{}: no scale-up just under the target", scenario.name);
    let below_expected = format!(
        "{min} replicas kept for {} s while the HPA reports {} in [{floor:.0}, {ceiling:.0}] (documented target {target}, tolerance {tolerance})",
        probe.hold_seconds, scenario.metric
    );
    let above_subject = format!("{}: a scale-up just over the target", scenario.name);
    let above_expected = format!(
        "more than {min} replicas in the first HPA sync that reports {} over {ceiling:.0} ({target} x (1 + {tolerance}))",
        scenario.metric
    );
    let client = match edge::https(cx) {
        Ok(c) => c,
        Err(e) => {
            r.record(object, &below_subject, below_expected, chain(&e), false);
            return false;
        }
    };
    let budget = cx.autoscaling.metric_latency_budget_seconds;
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let run_seconds = (2 * budget + probe.hold_seconds + 30) as f64;
    let url = edge::url(cx, "/api/v1/pipeline/runs");
    let below_load = load_of(&probe.below, run_seconds, budget);
    let below = Generator::start(client.clone(), url.clone(), below_load, cx.ingress_log.clone());
    let interval = Duration::from_secs(cx.autoscaling.sample_interval_seconds.max(1));
    let mut sampler = Sampler::new(cx);
    let band = Band { min, target, tolerance, floor: probe.floor };
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let mut under = Under {
        band,
        hold: probe.hold_seconds as f64,
        deadline: (budget + probe.hold_seconds) as f64,
        in_band_since: None,
        seen: Vec::new(),
    };
    let phase = observe(&mut sampler, &scenario.metric, target, interval, |at, u, d| under.step(at, u, d)).await;
    let (held, failed) = (matches!(phase, Phase::Held(_)), matches!(phase, Phase::Failed(_)));
    record(r, object, &below_subject, below_expected, phase);
    if !held {
        let stats = below.stop().await;
        eprintln!("live-autoscaling: {} probe stopped under the target ({stats})", scenario.name);
        r.skip(object, &above_subject, above_expected, "the probe under the target did not hold");
        return !failed;
    }
    let above_load = load_of(&probe.above, run_seconds, budget);
    let above = Generator::start(client, url, above_load, cx.ingress_log.clone());
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let mut over = Over { band, deadline: budget as f64, seen: Vec::new() };
    let phase = observe(&mut sampler, &scenario.metric, target, interval, |at, u, d| over.step(at, u, d)).await;
    let failed = matches!(phase, Phase::Failed(_));
    record(r, object, &above_subject, above_expected, phase);
    let (below, above) = (below.stop().await, above.stop().await);
    eprintln!("live-autoscaling: {} probe done (under: {below}; over: {above})", scenario.name);
    !failed
}

/// Samples the HPA every `interval` until `step` decides; a failure is
/// followed by the HPA's conditions and how its spec differs.
async fn observe(
    sampler: &mut Sampler<'_, '_>,
    metric: &str,
    target: f64,
    interval: Duration,
    mut step: impl FnMut(f64, Option<f64>, i32) -> Option<Phase>,
) -> Phase {
    let started = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let at = started.elapsed().as_secs_f64();
        let decided = match sampler.observe(metric).await {
            Ok(o) => step(at, o.sample.demand.map(|d| d.ratio * target), o.sample.desired),
            // An unreadable HPA is retried; past the deadline it counts as no reading.
            Err(_) => step(at, None, 0),
        };
        match decided {
            Some(Phase::Failed(why)) => return Phase::Failed(format!("{why}; {}", sampler.explain())),
            Some(phase) => return phase,
            None => {}
        }
    }
}

fn record(r: &mut Recorder, object: &str, subject: &str, expected: String, phase: Phase) {
    let (verdict, text) = match &phase {
        Phase::Held(found) => ("held", found),
        Phase::Failed(found) => ("FAILED", found),
        Phase::NotVerified(why) => ("not verified", why),
    };
    eprintln!("live-autoscaling: {subject}: {verdict}: {text}");
    match phase {
        Phase::Held(found) => r.record(object, subject, expected, found, true),
        Phase::Failed(found) => r.record(object, subject, expected, found, false),
        Phase::NotVerified(why) => r.skip(object, subject, expected, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: Band = Band { min: 3, target: 70.0, tolerance: 0.1, floor: 0.95 };

    fn under() -> Under {
        Under { band: CPU, hold: 45.0, deadline: 135.0, in_band_since: None, seen: Vec::new() }
    }

    /// Feeds (at, reading, desired) until the judge decides.
    fn run(mut step: impl FnMut(f64, Option<f64>, i32) -> Option<Phase>, syncs: &[(f64, Option<f64>, i32)]) -> Phase {
        syncs.iter().find_map(|&(at, u, d)| step(at, u, d)).unwrap_or(Phase::NotVerified("undecided".into()))
    }

    #[test]
    fn under_the_target_holds_three_syncs_in_the_band() {
        let mut u = under();
        let phase = run(
            |a, r, d| u.step(a, r, d),
            &[
                (15.0, None, 3),
                (30.0, Some(40.0), 3),
                (45.0, Some(73.0), 3),
                (60.0, Some(74.0), 3),
                (90.0, Some(72.0), 3),
            ],
        );
        assert!(matches!(phase, Phase::Held(ref s) if s.contains("from 45 s to 90 s")), "{phase:?}");
    }

    #[test]
    fn a_lower_target_scales_under_the_ceiling_and_a_higher_one_does_not_over_it() {
        let mut u = under();
        let lower = run(|a, r, d| u.step(a, r, d), &[(30.0, Some(73.0), 3), (45.0, Some(74.0), 5)]);
        assert!(matches!(lower, Phase::Failed(ref s) if s.contains("a target under 67")), "{lower:?}");
        let mut u = under();
        let higher = run(|a, r, d| u.step(a, r, d), &[(30.0, Some(80.0), 3)]);
        assert!(matches!(higher, Phase::Failed(ref s) if s.contains("a target over 70")), "{higher:?}");
    }

    #[test]
    fn a_probe_that_never_bites_is_not_verified() {
        let mut u = under();
        let low = run(|a, r, d| u.step(a, r, d), &[(60.0, Some(50.0), 3), (140.0, Some(55.0), 3)]);
        assert!(matches!(low, Phase::NotVerified(ref s) if s.contains("50, 55")), "{low:?}");
        let mut u = under();
        let overshoot = run(|a, r, d| u.step(a, r, d), &[(30.0, Some(95.0), 5)]);
        assert!(matches!(overshoot, Phase::NotVerified(_)), "{overshoot:?}");
    }

    #[test]
    fn over_the_target_the_first_sync_over_the_ceiling_decides() {
        let mut o = Over { band: CPU, deadline: 90.0, seen: Vec::new() };
        let good = run(|a, r, d| o.step(a, r, d), &[(15.0, Some(75.0), 3), (30.0, Some(89.0), 4)]);
        assert!(matches!(good, Phase::Held(_)), "{good:?}");
        let mut o = Over { band: CPU, deadline: 90.0, seen: Vec::new() };
        let doubled = run(|a, r, d| o.step(a, r, d), &[(15.0, Some(89.0), 3)]);
        assert!(matches!(doubled, Phase::Failed(ref s) if s.contains("a target over 81")), "{doubled:?}");
        let mut o = Over { band: CPU, deadline: 90.0, seen: Vec::new() };
        let short = run(|a, r, d| o.step(a, r, d), &[(60.0, Some(76.0), 3), (95.0, Some(77.0), 3)]);
        assert!(matches!(short, Phase::NotVerified(_)), "{short:?}");
    }
}
