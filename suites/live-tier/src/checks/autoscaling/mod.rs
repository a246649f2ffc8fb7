//! Autoscaling under generated load (production): for each scenario of the
//! profile, gate on the custom-metrics pipeline, start an open-loop load
//! through the ingress, sample the HPA, the Deployment and Ready pods, and
//! judge the scale-up against the documented timeline and policies; the
//! nightly profile also judges the scale-down once the load has stopped.
//! Evidence per scenario: samples (JSON), a step table and an SVG plot.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use serde_json::json;

use cbam_error_chain::render as chain;
use cbam_model::evidence_file::write_atomic;
use cbam_model::fixtures::{Hold, Load, Scenario};
use cbam_model::outcome::Recorder;

use crate::actions::hpa_rest::{at_rest, longest_run, rest_bound};
use crate::app_pods::{app_pods, is_ready};
use crate::context::LiveContext;
use crate::judges::hpa_reading;
use crate::judges::scale_down::{self, DownClaim};
use crate::judges::scaling_timeline::{self, Claim, Sample, Verdict};
use crate::plots::timeline_plot;
use crate::traffic::https::{self as edge, EdgeError};
use crate::traffic::load::{Generator, LoadStats};
use cbam_model::profile::Profile;

mod metrics_pipeline;
mod sampler;
mod target_probe;

use sampler::{Observation, Sampler};

fn claim(cx: &LiveContext<'_>, scenario: &Scenario) -> Claim {
    let a = &cx.autoscaling;
    let hpa = &cx.governance.hpa;
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let secs = |s: u64| s as f64;
    Claim {
        min: hpa.min_replicas,
        max: hpa.max_replicas,
        reach: scenario.reach.min(hpa.max_replicas),
        predicted: hpa.predicted.scale_up.clone(),
        scale_up: hpa.scale_up.clone(),
        tolerance: a.hpa_tolerance,
        latency_budget: secs(a.metric_latency_budget_seconds),
        late_tolerance: secs(a.step_late_tolerance_seconds),
        ready_budget: secs(a.ready_budget_seconds),
    }
}

/// Steps at which a metric other than the scenario's proposed at least the
/// new desired replicas (the scenario's metric must drive on its own).
fn other_drivers(scenario: &Scenario, observations: &[Observation]) -> Vec<String> {
    let mut previous = None;
    let mut found = Vec::new();
    for o in observations {
        if previous.is_some_and(|p| o.sample.desired > p) {
            // The proposals that led to this step are those of the sample before.
            let before = observations.iter().take_while(|x| x.sample.at < o.sample.at).last();
            for p in before.map(|b| b.proposals.as_slice()).unwrap_or_default() {
                if p.metric != scenario.metric && p.replicas >= o.sample.desired {
                    found.push(format!("{} proposed {} at {:.0} s", p.metric, p.replicas, o.sample.at));
                }
            }
        }
        previous = Some(o.sample.desired);
    }
    found
}

/// Before the load: `hold.runs` runs at minReplicas put the metric at its
/// documented target; once the HPA reports them it must keep minReplicas for
/// `hold.seconds` (a lower target would scale up). The runs last through the
/// scenario: they are part of its demand. True when the HPA held.
async fn hold_at_target(cx: &LiveContext<'_>, scenario: &Scenario, hold: Hold, r: &mut Recorder, object: &str) -> bool {
    let documented = &cx.governance.hpa;
    let a = &cx.autoscaling;
    let min = documented.min_replicas;
    let per_pod = f64::from(hold.runs) / f64::from(min);
    let target = hpa_reading::documented_target(documented, &scenario.metric).unwrap_or(f64::NAN);
    let subject = format!("{}: no scale-up at the target", scenario.name);
    let expected = format!(
        "{} runs ({per_pod:.2} per pod at {min} pods, documented target {target}) held {} s after the HPA reports them: {min} replicas throughout",
        hold.runs, hold.seconds
    );
    let client = match edge::https(cx) {
        Ok(c) => c,
        Err(e) => {
            r.record(object, &subject, expected, chain(&e), false);
            return false;
        }
    };
    let load = Load {
        burst: hold.runs,
        arrivals_per_minute: 0.0,
        run_seconds: longest_run(cx, scenario),
        max_seconds: a.metric_latency_budget_seconds,
        until_accepted: None,
        ..scenario.load
    };
    let generator = Generator::start(client, edge::url(cx, "/api/v1/pipeline/runs"), load, cx.ingress_log.clone());
    let mut sampler = Sampler::new(cx);
    let mut ticker = tokio::time::interval(Duration::from_secs(a.sample_interval_seconds.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let (budget, hold_for) = (a.metric_latency_budget_seconds as f64, hold.seconds as f64);
    let mut seen: Option<f64> = None;
    let outcome = loop {
        ticker.tick().await;
        cx.ingress_log.routing(Instant::now(), edge::routing_version(cx).await);
        let o = match sampler.observe(&scenario.metric).await {
            Ok(o) => o,
            // Retried at the next tick, within the same bound as a sample.
            Err(e) if sampler.started.elapsed().as_secs_f64() > budget + hold_for => {
                break Err(format!("{} (retried for {:.0} s)", chain(&e), budget + hold_for));
            }
            Err(e) => {
                eprintln!("live-autoscaling: {}", chain(&e));
                continue;
            }
        };
        let (now, reported) = (o.sample.at, o.sample.demand.map(|d| d.ratio * target));
        let reported_text = reported.map_or_else(|| "no value".to_owned(), |v| format!("{v:.2} per pod"));
        if o.sample.desired > min {
            break Err(format!(
                "desired {} at {now:.0} s after the runs started, the HPA reporting {reported_text}; {}",
                o.sample.desired,
                sampler.explain()
            ));
        }
        match seen {
            None if reported.is_some_and(|v| v >= per_pod - 0.01) => seen = Some(now),
            None if now > budget => {
                break Err(format!(
                    "the HPA did not report {per_pod:.2} per pod within {budget:.0} s ({reported_text}); {}",
                    sampler.explain()
                ));
            }
            Some(t) if now >= t + hold_for => {
                break Ok(format!(
                    "the HPA reported {reported_text} at {t:.0} s and kept {min} replicas for the next {:.0} s",
                    now - t
                ));
            }
            _ => {}
        }
    };
    let stats = generator.stop().await;
    let (found, held) = match outcome {
        Ok(found) if stats.accepted == u64::from(hold.runs) => (found, true),
        Ok(found) => (format!("{found}, but {stats}"), false),
        Err(why) => (format!("{why}; {stats}"), false),
    };
    r.record(object, &subject, expected, found, held);
    held
}

struct ScenarioRun {
    observations: Vec<Observation>,
    verdict: Verdict,
    explanation: String,
    stats: LoadStats,
    stopped_at: f64,
}

async fn scale_up(cx: &LiveContext<'_>, scenario: &Scenario, claim: &Claim) -> Result<ScenarioRun, EdgeError> {
    let client = edge::https(cx)?;
    let mut sampler = Sampler::new(cx);
    let generator =
        Generator::start(client, edge::url(cx, "/api/v1/pipeline/runs"), scenario.load, cx.ingress_log.clone());
    let mut ticker = tokio::time::interval(Duration::from_secs(cx.autoscaling.sample_interval_seconds.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut observations = Vec::new();
    let verdict = loop {
        ticker.tick().await;
        // Pods coming and going change the routing: the rate limit's bucket
        // restarts (see rate_bucket), so each sample notes the version.
        cx.ingress_log.routing(Instant::now(), edge::routing_version(cx).await);
        match sampler.observe(&scenario.metric).await {
            Ok(o) => observations.push(o),
            // A failed read is retried at the next tick; the judge's deadlines still apply.
            Err(e) => eprintln!("live-autoscaling: {}", chain(&e)),
        }
        let samples: Vec<Sample> = observations.iter().map(|o| o.sample).collect();
        let verdict = scaling_timeline::judge(claim, &samples, sampler.started.elapsed().as_secs_f64());
        if verdict != Verdict::Pending {
            break verdict;
        }
    };
    let explanation = sampler.explain();
    let stopped_at = sampler.started.elapsed().as_secs_f64();
    let stats = generator.stop().await;
    Ok(ScenarioRun { observations, verdict, explanation, stats, stopped_at })
}

/// Nightly: after the load stops, the HPA must hold for its stabilization
/// window and come down no faster than the documented policies, to min.
async fn scale_down_after(cx: &LiveContext<'_>, scenario: &Scenario, from: i32, r: &mut Recorder, object: &str) {
    let hpa = &cx.governance.hpa;
    #[expect(clippy::cast_precision_loss, reason = "small second counts")]
    let claim = DownClaim {
        min: hpa.min_replicas,
        from,
        rules: hpa.scale_down.clone(),
        tolerance: cx.autoscaling.hpa_tolerance,
        // The runs outlive the load: the longest (the hold's) at most this long.
        demand_budget: longest_run(cx, scenario) + 2.0 * cx.autoscaling.step_late_tolerance_seconds as f64,
        late_tolerance: cx.autoscaling.step_late_tolerance_seconds as f64,
        interval: cx.autoscaling.sample_interval_seconds as f64,
        sync_period: cx.autoscaling.hpa_sync_period_seconds as f64,
    };
    let mut sampler = Sampler::new(cx);
    let mut ticker = tokio::time::interval(Duration::from_secs(cx.autoscaling.sample_interval_seconds.max(1)));
    let mut samples = Vec::new();
    let verdict = loop {
        ticker.tick().await;
        if let Ok(o) = sampler.observe(&scenario.metric).await {
            samples.push(o.sample);
        }
        let v = scale_down::judge(&claim, &samples, sampler.started.elapsed().as_secs_f64());
        if v != Verdict::Pending {
            break v;
        }
    };
    let expected = format!(
        "hold {} s after the metric falls below the target, then at most the documented rate down to {}",
        hpa.scale_down.stabilization_window_seconds, hpa.min_replicas
    );
    match verdict {
        Verdict::Reached { latency, ready_at } => r.record(
            object,
            &format!("{}: scale-down", scenario.name),
            expected,
            format!("first step down {latency:.0} s after the load stopped, {} at {ready_at:.0} s", hpa.min_replicas),
            true,
        ),
        Verdict::Failed(why) => r.record(
            object,
            &format!("{}: scale-down", scenario.name),
            expected,
            format!("{why}; {}", sampler.explain()),
            false,
        ),
        Verdict::NotVerified(why) => r.skip(object, &format!("{}: scale-down", scenario.name), expected, why),
        Verdict::Pending => {}
    }
}

fn write_evidence(dir: &Path, scenario: &Scenario, claim: &Claim, run: &ScenarioRun, latency: Option<f64>) -> String {
    let samples: Vec<Sample> = run.observations.iter().map(|o| o.sample).collect();
    let rows = scaling_timeline::table(claim, &samples);
    let doc = json!({
        "scenario": scenario.name, "metric": scenario.metric, "load": {
            "burst": scenario.load.burst, "arrivals_per_minute": scenario.load.arrivals_per_minute,
            "run_seconds": scenario.load.run_seconds, "cpu": scenario.load.cpu, "memory_mib": scenario.load.memory_mib,
            "max_seconds": scenario.load.max_seconds, "stats": run.stats },
        "verdict": format!("{:?}", run.verdict), "metric_latency_seconds": latency,
        "steps": rows, "samples": run.observations,
    });
    let title = format!("{}: {} (load start = 0 s)", scenario.name, scenario.metric);
    let written = write_atomic(
        &dir.join(format!("{}.json", scenario.name)),
        &serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .and_then(|()| {
        write_atomic(
            &dir.join(format!("{}.svg", scenario.name)),
            &timeline_plot::svg(&title, claim.min, &claim.predicted, &samples, latency),
        )
    });
    // The step table below is the evidence either way; say when its files are missing.
    let plot = match written {
        Ok(()) => format!("Plot: `autoscaling/{}.svg`.", scenario.name),
        Err(e) => format!("Samples and plot not written ({}).", chain(&e)),
    };
    format!(
        "### Autoscaling `{}` ({})\n\nLoad: {}. Metric latency (load start to first scale-up): {}. {plot}\n\n{}\n",
        scenario.name,
        scenario.metric,
        run.stats,
        latency.map_or_else(|| "none".to_owned(), |l| format!("{l:.0} s")),
        scaling_timeline::markdown(&rows)
    )
}

/// Runs the profile's scenarios; each adds its step table to the report.
pub(crate) async fn autoscaling(cx: &LiveContext<'_>, r: &mut Recorder) {
    let (profile, report_dir) = (cx.profile, cx.report_dir);
    let object = format!("HorizontalPodAutoscaler {}/{}", cx.namespace(), cx.governance.hpa.name);
    let documented = &cx.governance.hpa;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cx.client.clone(), cx.namespace());
    match hpas.get(&documented.name).await {
        Ok(live) => {
            let differences = hpa_reading::differences(&live, documented);
            r.record(
                &object,
                "spec as documented",
                "fixtures/governance.yaml: replicas, metric targets, scale-up and scale-down behavior",
                if differences.is_empty() { "identical".to_owned() } else { differences.join("; ") },
                differences.is_empty(),
            );
        }
        Err(e) => r.record(&object, "spec as documented", "the live HPA", format!("failed to read it: {e}"), false),
    }
    // Seconds the previous scenario's last runs keep its demand up after its load stops.
    let mut previous_runs = 0.0_f64;
    for (k, scenario) in cx.autoscaling.scenarios.iter().filter(|s| s.runs_in(profile)).enumerate() {
        let subject = format!("{}: scale-up", scenario.name);
        let claim = claim(cx, scenario);
        let rest = rest_bound(cx, previous_runs);
        previous_runs = longest_run(cx, scenario);
        // The period since the last rescale is only needed by the scale-up.
        if let Err(e) = at_rest(cx, rest, scenario.hold.is_none() && scenario.probe.is_none()).await {
            r.record(
                &object,
                &subject,
                format!("{} replicas at rest before the load", documented.min_replicas),
                chain(&e),
                false,
            );
            continue;
        }
        let pods: Vec<String> = match app_pods(cx).await {
            Ok(p) => p.iter().filter(|p| is_ready(p)).filter_map(|p| p.metadata.name.clone()).collect(),
            Err(e) => {
                r.record(&object, &subject, "the Deployment's Ready pods", chain(&e), false);
                return;
            }
        };
        if let Err(e) = metrics_pipeline::ready(
            &cx.client,
            cx.namespace(),
            &documented.pods_metric.name,
            &pods,
            cx.timeouts.metrics_pipeline,
        )
        .await
        {
            r.record(
                &object,
                "custom metrics pipeline",
                format!("{} served for every pod", documented.pods_metric.name),
                chain(&e),
                false,
            );
            return;
        }
        if let Some(probe) = &scenario.probe
            && !target_probe::target_probe(cx, scenario, probe, r, &object).await
        {
            // The path is predicted from the documented target: not this HPA's.
            r.skip(&object, &subject, claim.path(), "the live target is not the documented one (the probe above)");
            continue;
        }
        if let Some(hold) = scenario.hold
            && !hold_at_target(cx, scenario, hold, r, &object).await
        {
            r.skip(
                &object,
                &subject,
                claim.path(),
                "the HPA did not hold at its target, so the scale-up had no rest to start from",
            );
            continue;
        }
        if (scenario.hold.is_some() || scenario.probe.is_some())
            && let Err(e) = at_rest(cx, rest, true).await
        {
            r.record(
                &object,
                &subject,
                format!("{} replicas at rest, the last rescale a period ago, before the load", documented.min_replicas),
                chain(&e),
                false,
            );
            continue;
        }
        let run = match scale_up(cx, scenario, &claim).await {
            Ok(run) => run,
            Err(e) => {
                r.record(&object, &subject, "an HTTPS client for the ingress", chain(&e), false);
                continue;
            }
        };
        let expected = format!(
            "exactly {} ({}s after the first scale-up, each at most {:.0} s later than that after the step before), the first in the HPA sync that first reports the demand and within {:.0} s of load start, {} Ready",
            claim.path(),
            claim.steps().map(|s| s.at.to_string()).collect::<Vec<_>>().join("/"),
            claim.late_tolerance,
            claim.latency_budget,
            claim.reach
        );
        let latency = match &run.verdict {
            Verdict::Reached { latency, ready_at } => {
                let floor = claim.predicted.iter().take_while(|s| s.replicas < claim.reach).last().map_or(0, |s| s.at);
                let last_step = claim.predicted.iter().find(|s| s.replicas >= claim.reach).map_or(floor, |s| s.at);
                r.record(
                    &object,
                    &subject,
                    &expected,
                    format!(
                        "first scale-up {latency:.0} s after load start (metric latency), {} Ready at {ready_at:.0} s; the HPA's own timeline is {last_step} s, the rest ({:.0} s) is metric latency, pod start and sampling; {}",
                        claim.reach,
                        ready_at - f64::from(last_step),
                        run.stats
                    ),
                    true,
                );
                let others = other_drivers(scenario, &run.observations);
                r.record(
                    &object,
                    &format!("{}: driven by {} alone", scenario.name, scenario.metric),
                    "no other metric proposes the new replica count at a step",
                    if others.is_empty() { "none did".to_owned() } else { others.join("; ") },
                    others.is_empty(),
                );
                Some(*latency)
            }
            Verdict::Failed(why) => {
                r.record(&object, &subject, &expected, format!("{why}; {}; {}", run.explanation, run.stats), false);
                run.observations.iter().find(|o| o.sample.desired > claim.min).map(|o| o.sample.at)
            }
            Verdict::NotVerified(why) => {
                r.skip(&object, &subject, &expected, format!("{why}; {}", run.stats));
                run.observations.iter().find(|o| o.sample.desired > claim.min).map(|o| o.sample.at)
            }
            Verdict::Pending => None,
        };
        r.section(write_evidence(&report_dir.join("autoscaling"), scenario, &claim, &run, latency));
        eprintln!("live-autoscaling: {} finished after {:.0} s ({})", scenario.name, run.stopped_at, run.stats);
        if profile == Profile::Nightly && k == 0 && matches!(run.verdict, Verdict::Reached { .. }) {
            scale_down_after(cx, scenario, claim.reach, r, &object).await;
        }
    }
    if r.sections.is_empty() && r.outcomes.is_empty() {
        r.skip(
            &object,
            "scenarios",
            format!("{profile:?} scenarios"),
            "fixtures/autoscaling.yaml has none for this profile",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judges::hpa_reading::Proposal;
    use cbam_model::fixtures::Load;

    fn scenario(metric: &str, profiles: Vec<Profile>) -> Scenario {
        let load = Load {
            burst: 1,
            arrivals_per_minute: 1.0,
            run_seconds: 1.0,
            cpu: 0.0,
            memory_mib: 0,
            max_seconds: 1,
            until_accepted: None,
        };
        Scenario { name: "s".into(), metric: metric.into(), profiles, reach: 15, hold: None, probe: None, load }
    }

    fn observation(at: f64, desired: i32, proposals: &[(&str, i32)]) -> Observation {
        Observation {
            sample: Sample { from: at, at, desired, ready: desired, demand: None },
            proposals: proposals
                .iter()
                .map(|(m, r)| Proposal { metric: (*m).into(), current: 0.0, target: 1.0, replicas: *r })
                .collect(),
        }
    }

    #[test]
    fn profiles_select_their_scenarios() {
        let quick = scenario("pods/x", vec![Profile::Quick, Profile::Nightly]);
        let nightly = scenario("resource/cpu", vec![Profile::Nightly]);
        assert!(quick.runs_in(Profile::Quick) && !nightly.runs_in(Profile::Quick));
        assert!(quick.runs_in(Profile::Nightly) && nightly.runs_in(Profile::Nightly));
    }

    #[test]
    fn names_another_metric_that_could_have_made_a_step() {
        let s = scenario("pods/x", vec![Profile::Quick]);
        let alone = [
            observation(0.0, 3, &[("pods/x", 9), ("resource/cpu", 1)]),
            observation(2.0, 5, &[("pods/x", 9), ("resource/cpu", 1)]),
        ];
        assert!(other_drivers(&s, &alone).is_empty());
        let shared = [observation(0.0, 3, &[("pods/x", 9), ("resource/cpu", 6)]), observation(2.0, 5, &[])];
        assert_eq!(other_drivers(&s, &shared), ["resource/cpu proposed 6 at 2 s"]);
    }
}
