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

use crate::cli::chain;
use crate::fixtures::{Load, Probe, ProbeLoad, Scenario};
use crate::live::autoscaling::Sampler;
use crate::live::context::LiveContext;
use crate::live::edge;
use crate::live::hpa_reading;
use crate::live::load::Generator;
use crate::outcome::Recorder;

/// What one phase established.
enum Phase {
    Held(String),
    Failed(String),
    NotVerified(String),
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
/// per phase. The runs end by themselves; the caller waits for rest.
pub(crate) async fn target_probe(
    cx: &LiveContext<'_>,
    scenario: &Scenario,
    probe: &Probe,
    r: &mut Recorder,
    object: &str,
) {
    let documented = &cx.governance.hpa;
    let (min, tolerance) = (documented.min_replicas, cx.autoscaling.hpa_tolerance);
    let Some(target) = hpa_reading::documented_target(documented, &scenario.metric) else {
        return r.skip(object, &format!("{}: target", scenario.name), "a documented target", "none for this metric");
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
        Err(e) => return r.record(object, &below_subject, below_expected, chain(&e), false),
    };
    let budget = cx.autoscaling.metric_latency_budget_seconds;
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let run_seconds = (2 * budget + probe.hold_seconds + 30) as f64;
    let url = edge::url(cx, "/api/v1/pipeline/runs");
    let below_load = load_of(&probe.below, run_seconds, budget);
    let below = Generator::start(client.clone(), url.clone(), below_load, cx.ingress_log.clone());
    let interval = Duration::from_secs(cx.autoscaling.sample_interval_seconds.max(1));
    let mut sampler = Sampler::new(cx);
    let mut in_band_since: Option<f64> = None;
    let mut seen = Vec::new();
    let started = Instant::now();
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let (hold, deadline) = (probe.hold_seconds as f64, (budget + probe.hold_seconds) as f64);
    let phase = loop {
        tokio::time::sleep(interval).await;
        let at = started.elapsed().as_secs_f64();
        let o = match sampler.observe(&scenario.metric).await {
            Ok(o) => o,
            Err(e) if at > deadline => break Phase::NotVerified(chain(&e)),
            Err(_) => continue,
        };
        let Some(utilization) = o.sample.demand.map(|d| d.ratio * target) else {
            if at > deadline {
                break Phase::NotVerified(format!("the HPA reported no {} in {deadline:.0} s", scenario.metric));
            }
            continue;
        };
        seen.push(format!("{utilization:.0}"));
        let desired = o.sample.desired;
        match (utilization <= ceiling, desired > min) {
            (true, true) => {
                break Phase::Failed(format!(
                    "desired {desired} at {at:.0} s with the HPA reporting {utilization:.0}: a target under {:.0}; {}",
                    utilization / (1.0 + tolerance),
                    sampler.explain()
                ));
            }
            (false, false) => {
                break Phase::Failed(format!(
                    "{min} replicas kept at {at:.0} s with the HPA reporting {utilization:.0} (over {ceiling:.0}): a target over {target}; {}",
                    sampler.explain()
                ));
            }
            (false, true) => {
                break Phase::NotVerified(format!(
                    "the runs put the metric over the band ({utilization:.0} > {ceiling:.0}) and the HPA rightly scaled: recalibrate the probe's runs"
                ));
            }
            (true, false) if utilization >= floor => {
                let since = *in_band_since.get_or_insert(at);
                if at - since >= hold {
                    break Phase::Held(format!(
                        "{min} replicas from {since:.0} s to {at:.0} s, the HPA reporting {}",
                        seen.join(", ")
                    ));
                }
            }
            (true, false) => in_band_since = None,
        }
        if at > deadline {
            break Phase::NotVerified(format!(
                "the HPA never reported the metric in [{floor:.0}, {ceiling:.0}] for {hold:.0} s within {deadline:.0} s: it read {}",
                seen.join(", ")
            ));
        }
    };
    let held = matches!(phase, Phase::Held(_));
    record(r, object, &below_subject, below_expected, phase);
    if !held {
        let stats = below.stop().await;
        eprintln!("live-autoscaling: {} probe stopped under the target ({stats})", scenario.name);
        return r.skip(object, &above_subject, above_expected, "the probe under the target did not hold");
    }
    let above_load = load_of(&probe.above, run_seconds, budget);
    let above = Generator::start(client, url, above_load, cx.ingress_log.clone());
    let started = Instant::now();
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let deadline = budget as f64;
    seen.clear();
    let phase = loop {
        tokio::time::sleep(interval).await;
        let at = started.elapsed().as_secs_f64();
        let Ok(o) = sampler.observe(&scenario.metric).await else {
            if at > deadline {
                break Phase::NotVerified("the HPA could not be read".into());
            }
            continue;
        };
        if let Some(utilization) = o.sample.demand.map(|d| d.ratio * target) {
            seen.push(format!("{utilization:.0}"));
            if utilization > ceiling {
                break if o.sample.desired > min {
                    Phase::Held(format!(
                        "desired {} in the first sync reporting {utilization:.0}, {at:.0} s after the added runs",
                        o.sample.desired
                    ))
                } else {
                    Phase::Failed(format!(
                        "{min} replicas kept with the HPA reporting {utilization:.0} (over {ceiling:.0}): a target over {:.0}; {}",
                        utilization / (1.0 + tolerance),
                        sampler.explain()
                    ))
                };
            }
            if o.sample.desired > min {
                break Phase::Failed(format!(
                    "desired {} at {at:.0} s with the HPA reporting {utilization:.0}, not over {ceiling:.0}: a target under {target}",
                    o.sample.desired
                ));
            }
        }
        if at > deadline {
            break Phase::NotVerified(format!(
                "the HPA never reported the metric over {ceiling:.0} within {deadline:.0} s: it read {}",
                seen.join(", ")
            ));
        }
    };
    record(r, object, &above_subject, above_expected, phase);
    let (below, above) = (below.stop().await, above.stop().await);
    eprintln!("live-autoscaling: {} probe done (under: {below}; over: {above})", scenario.name);
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
