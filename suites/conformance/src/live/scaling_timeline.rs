//! Judges an observed HPA scale-up against the documented one: samples of
//! the HPA's desired replicas (and Ready pods) taken every few seconds are
//! compared with the predicted steps (from the fixtures) and with the
//! documented scale-up policies. Fails as soon as the outcome is certain:
//! a step bigger than the policies allow, more than the maximum, or a
//! predicted step not reached by its deadline.

use serde::Serialize;

use crate::fixtures::{PolicyType, ScalingRules, SelectPolicy, Step};

/// One observation, `at` seconds after the load started.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Sample {
    pub(crate) at: f64,
    pub(crate) desired: i32,
    pub(crate) ready: i32,
}

/// What the documentation claims, and the slack the test cluster needs.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) min: i32,
    pub(crate) max: i32,
    /// The replicas the scenario must reach (at most `max`).
    pub(crate) reach: i32,
    /// Predicted steps from the first scale-up (at 0).
    pub(crate) predicted: Vec<Step>,
    pub(crate) scale_up: ScalingRules,
    pub(crate) latency_budget: f64,
    pub(crate) late_tolerance: f64,
    pub(crate) ready_budget: f64,
    /// Sampling period: a step is seen up to this late.
    pub(crate) interval: f64,
}

/// One observed step next to its prediction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct StepRow {
    pub(crate) replicas: i32,
    /// Predicted seconds after the first scale-up.
    pub(crate) predicted_at: Option<u32>,
    /// Observed seconds after the first scale-up.
    pub(crate) observed_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Pending,
    /// Reached: seconds from load start to the first scale-up (metric
    /// latency) and to `reach` pods Ready.
    Reached {
        latency: f64,
        ready_at: f64,
    },
    Failed(String),
}

impl Claim {
    /// The most replicas the documented policies allow from `base`
    /// replicas at the start of the period.
    pub(crate) fn allowed_from(&self, base: i32) -> i32 {
        let proposals = self.scale_up.policies.iter().map(|p| match p.type_ {
            PolicyType::Pods => base + p.value,
            PolicyType::Percent => {
                let grown = (f64::from(base) * (1.0 + f64::from(p.value) / 100.0)).ceil();
                #[expect(clippy::cast_possible_truncation, reason = "replica counts are small")]
                let grown = grown as i32;
                grown
            }
        });
        let bound = match self.scale_up.select_policy {
            SelectPolicy::Min => proposals.min(),
            SelectPolicy::Disabled => Some(base),
            SelectPolicy::Max => proposals.max(),
        };
        bound.unwrap_or(base).min(self.max)
    }

    /// The predicted steps up to `reach`.
    fn steps(&self) -> impl Iterator<Item = &Step> {
        let reach = self.reach;
        let mut done = false;
        self.predicted.iter().take_while(move |s| {
            let keep = !done;
            done = s.replicas >= reach;
            keep
        })
    }
}

/// The longest policy period: the window a step's base is taken from.
pub(crate) fn period(rules: &ScalingRules) -> f64 {
    rules.policies.iter().map(|p| f64::from(p.period_seconds)).fold(0.0, f64::max)
}

/// Desired replicas in effect at time `t` (the last sample at or before it).
pub(crate) fn desired_at(samples: &[Sample], t: f64, start: i32) -> i32 {
    samples.iter().take_while(|s| s.at <= t).last().map_or(start, |s| s.desired)
}

/// First time desired replicas were at least `n`.
fn first_at_least(samples: &[Sample], n: i32) -> Option<f64> {
    samples.iter().find(|s| s.desired >= n).map(|s| s.at)
}

/// Judges the samples so far; `now` is seconds since the load started.
pub(crate) fn judge(claim: &Claim, samples: &[Sample], now: f64) -> Verdict {
    let window = period(&claim.scale_up);
    let mut previous = claim.min;
    for s in samples {
        if s.desired > claim.max {
            return Verdict::Failed(format!(
                "desired {} replicas at {:.0} s, above the documented maxReplicas {}",
                s.desired, s.at, claim.max
            ));
        }
        if s.desired > previous {
            // Base: what was in effect one period before, seen from the sample
            // after it (a step is observed up to one interval late).
            let base = desired_at(samples, s.at - window + claim.interval, claim.min);
            let allowed = claim.allowed_from(base);
            if s.desired > allowed {
                return Verdict::Failed(format!(
                    "scaled {previous} -> {} at {:.0} s; the documented policies allow at most {allowed} from {base} within {window:.0} s",
                    s.desired, s.at
                ));
            }
        }
        previous = s.desired;
    }
    let Some(first) = samples.iter().find(|s| s.desired > claim.min).map(|s| s.at) else {
        return if now > claim.latency_budget {
            Verdict::Failed(format!(
                "no scale-up within {:.0} s of load start (desired stayed {})",
                claim.latency_budget,
                samples.last().map_or(claim.min, |s| s.desired)
            ))
        } else {
            Verdict::Pending
        };
    };
    // Each predicted step has a deadline: the previous step's observed time
    // plus the predicted gap plus the tolerance (the first: the latency budget).
    let mut previous_at = (0u32, first);
    for (k, step) in claim.steps().enumerate() {
        let deadline = if k == 0 {
            claim.latency_budget
        } else {
            previous_at.1 + f64::from(step.at - previous_at.0) + claim.late_tolerance
        };
        let target = step.replicas.min(claim.reach);
        match first_at_least(samples, target) {
            Some(at) => previous_at = (step.at, at),
            None if now > deadline => {
                return Verdict::Failed(format!(
                    "predicted step {k} ({target} replicas, {} s after the first scale-up) not reached by {deadline:.0} s after load start: desired {}",
                    step.at,
                    samples.last().map_or(claim.min, |s| s.desired)
                ));
            }
            None => return Verdict::Pending,
        }
    }
    let reached_at = previous_at.1;
    match samples.iter().find(|s| s.at >= reached_at && s.ready >= claim.reach) {
        Some(s) => Verdict::Reached { latency: first, ready_at: s.at },
        None if now > reached_at + claim.ready_budget => Verdict::Failed(format!(
            "desired {} at {reached_at:.0} s but only {} Ready {:.0} s later",
            claim.reach,
            samples.last().map_or(0, |s| s.ready),
            claim.ready_budget
        )),
        None => Verdict::Pending,
    }
}

/// Predicted and observed steps side by side (seconds after the first scale-up).
pub(crate) fn table(claim: &Claim, samples: &[Sample]) -> Vec<StepRow> {
    let first = samples.iter().find(|s| s.desired > claim.min).map(|s| s.at);
    let mut rows: Vec<StepRow> = claim
        .steps()
        .map(|s| StepRow { replicas: s.replicas.min(claim.reach), predicted_at: Some(s.at), observed_at: None })
        .collect();
    let mut previous = claim.min;
    for s in samples {
        if s.desired != previous {
            let observed = first.map(|f| s.at - f);
            match rows.iter_mut().find(|r| r.replicas == s.desired && r.observed_at.is_none()) {
                Some(row) => row.observed_at = observed,
                None => rows.push(StepRow { replicas: s.desired, predicted_at: None, observed_at: observed }),
            }
            previous = s.desired;
        }
    }
    rows
}

pub(crate) fn markdown(rows: &[StepRow]) -> String {
    let mut md = String::from("| replicas | predicted (s) | observed (s) | delta (s) |\n|---|---|---|---|\n");
    for r in rows {
        // Rounded first: -0.4 s shows as 0, not -0.
        let shown = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.0}", v.round() + 0.0));
        let delta = r.predicted_at.zip(r.observed_at).map(|(p, o)| o - f64::from(p));
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.replicas,
            shown(r.predicted_at.map(f64::from)),
            shown(r.observed_at),
            shown(delta)
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ScalingPolicy;

    fn claim(policies: Vec<(PolicyType, i32)>) -> Claim {
        Claim {
            min: 3,
            max: 15,
            reach: 15,
            predicted: [(0, 5), (60, 8), (120, 12), (180, 15)]
                .into_iter()
                .map(|(at, replicas)| Step { at, replicas })
                .collect(),
            scale_up: ScalingRules {
                stabilization_window_seconds: 0,
                select_policy: SelectPolicy::Max,
                policies: policies
                    .into_iter()
                    .map(|(type_, value)| ScalingPolicy { type_, value, period_seconds: 60 })
                    .collect(),
            },
            latency_budget: 90.0,
            late_tolerance: 30.0,
            ready_budget: 90.0,
            interval: 2.0,
        }
    }

    fn documented() -> Claim {
        claim(vec![(PolicyType::Percent, 50), (PolicyType::Pods, 2)])
    }

    /// Samples every 2 s of a timeline given as (from second, desired, ready).
    fn samples(until: u32, steps: &[(u32, i32, i32)]) -> Vec<Sample> {
        (0..=until / 2)
            .map(|k| {
                let at = k * 2;
                let (_, desired, ready) =
                    steps.iter().rev().find(|(from, _, _)| *from <= at).copied().unwrap_or((0, 3, 3));
                Sample { at: f64::from(at), desired, ready }
            })
            .collect()
    }

    #[test]
    fn the_documented_policies_bound_each_period() {
        let c = documented();
        assert_eq!([3, 5, 8, 12].map(|b| c.allowed_from(b)), [5, 8, 12, 15]);
        assert_eq!(claim(vec![(PolicyType::Pods, 1)]).allowed_from(3), 4);
    }

    #[test]
    fn an_hpa_on_the_predicted_timeline_reaches_the_maximum() {
        let s = samples(260, &[(36, 5, 3), (40, 5, 5), (98, 8, 8), (158, 12, 12), (218, 15, 14), (226, 15, 15)]);
        assert_eq!(judge(&documented(), &s, 260.0), Verdict::Reached { latency: 36.0, ready_at: 226.0 });
        let rows = table(&documented(), &s);
        assert_eq!(
            rows.iter().map(|r| r.observed_at).collect::<Vec<_>>(),
            [Some(0.0), Some(62.0), Some(122.0), Some(182.0)]
        );
        assert!(markdown(&rows).contains("| 15 | 180 | 182 | 2 |"));
        let early = [StepRow { replicas: 8, predicted_at: Some(60), observed_at: Some(59.6) }];
        assert!(markdown(&early).contains("| 8 | 60 | 60 | 0 |"), "{}", markdown(&early));
    }

    #[test]
    fn waits_while_a_step_is_still_within_its_window() {
        let s = samples(120, &[(36, 5, 5), (98, 8, 8)]);
        assert_eq!(judge(&documented(), &s, 120.0), Verdict::Pending);
    }

    #[test]
    fn a_lower_maximum_fails_at_the_step_it_cannot_reach() {
        let s = samples(250, &[(36, 5, 5), (98, 8, 8), (158, 10, 10)]);
        let Verdict::Failed(why) = judge(&documented(), &s, 250.0) else { panic!("expected a failure") };
        assert!(why.contains("step 2 (12 replicas") && why.contains("desired 10"), "{why}");
    }

    #[test]
    fn a_step_faster_than_the_policies_fails_at_once() {
        let s = samples(70, &[(36, 5, 5), (66, 8, 8)]);
        let Verdict::Failed(why) = judge(&documented(), &s, 70.0) else { panic!("expected a failure") };
        assert!(why.contains("5 -> 8 at 66 s") && why.contains("at most 5 from 3"), "{why}");
    }

    #[test]
    fn one_pod_per_minute_misses_the_first_step() {
        let s = samples(100, &[(36, 4, 4)]);
        let Verdict::Failed(why) = judge(&documented(), &s, 100.0) else { panic!("expected a failure") };
        assert!(why.contains("step 0 (5 replicas") && why.contains("desired 4"), "{why}");
    }

    #[test]
    fn no_scale_up_fails_after_the_latency_budget() {
        let s = samples(92, &[]);
        assert!(matches!(judge(&documented(), &s, 92.0), Verdict::Failed(w) if w.contains("no scale-up within 90 s")));
        assert_eq!(judge(&documented(), &samples(60, &[]), 60.0), Verdict::Pending);
    }

    #[test]
    fn more_than_the_maximum_fails() {
        let s = samples(40, &[(36, 16, 3)]);
        assert!(
            matches!(judge(&documented(), &s, 40.0), Verdict::Failed(w) if w.contains("above the documented maxReplicas 15"))
        );
    }

    #[test]
    fn a_partial_scenario_stops_at_its_reach() {
        let c = Claim { reach: 8, ..documented() };
        let s = samples(120, &[(30, 5, 5), (92, 8, 7), (96, 8, 8)]);
        assert_eq!(judge(&c, &s, 120.0), Verdict::Reached { latency: 30.0, ready_at: 96.0 });
    }
}
