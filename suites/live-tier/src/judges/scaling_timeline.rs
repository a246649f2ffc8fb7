//! Judges an observed HPA scale-up against the documented one: samples of
//! the HPA's status (desired replicas, and what the scenario's metric asks
//! for) and of Ready pods, taken every few seconds, are compared with the
//! predicted steps (from the fixtures) and the documented policies:
//! - the first scale-up comes in the sync that first reports the metric
//!   above its target (scale-up stabilization window 0);
//! - the replicas take exactly the predicted path (3 -> 5 -> 8 -> 12 -> 15),
//!   each step at most one tolerance later than its predicted distance from
//!   the step before (the controller counts a policy's period from its last
//!   scale event, so a sync missed at one step moves every later one);
//!   never more than the policies allow from a period before;
//! - where the HPA left the path because the load asked for less than the
//!   policies allow (a legal deviation), the claim is not verified.
//!
//! Fails as soon as the outcome is certain.

use serde::Serialize;

use cbam_model::fixtures::{PolicyType, ScalingRules, SelectPolicy, Step};

/// What the scenario's metric asks for, as the HPA reported it in the same
/// status as `desired` (one sync of the controller).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Demand {
    /// current / target of the metric.
    pub(crate) ratio: f64,
    /// The replicas that ratio asks for from the status' current replicas.
    pub(crate) asks: i32,
}

/// One observation, `at` seconds after the load started.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Sample {
    /// When the read of the HPA's status began: what it shows was current
    /// at some instant from here to `at`.
    pub(crate) from: f64,
    /// When that read was answered.
    pub(crate) at: f64,
    pub(crate) desired: i32,
    pub(crate) ready: i32,
    /// None while the HPA reports no value for the scenario's metric.
    pub(crate) demand: Option<Demand>,
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
    /// The HPA ignores ratios within 1 +- this (the controller's tolerance).
    pub(crate) tolerance: f64,
    /// Load start to the first scale-up: the metrics pipeline's latency.
    pub(crate) latency_budget: f64,
    /// A step may be seen this long after its predicted distance from the
    /// step before it.
    pub(crate) late_tolerance: f64,
    pub(crate) ready_budget: f64,
}

/// One observed step next to its prediction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct StepRow {
    pub(crate) replicas: i32,
    /// Predicted seconds after the first scale-up.
    pub(crate) predicted_at: Option<u32>,
    /// Observed seconds after the first scale-up.
    pub(crate) observed_at: Option<f64>,
    /// Seconds later than predicted after the step before (what is judged).
    pub(crate) late: Option<f64>,
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
    /// The HPA did what its policies allow, but the load did not make the
    /// documented path the only one: the claim was not established.
    NotVerified(String),
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

    /// The predicted steps up to `reach`, capped at it.
    pub(crate) fn steps(&self) -> impl Iterator<Item = Step> + '_ {
        let reach = self.reach;
        let mut done = false;
        self.predicted
            .iter()
            .take_while(move |s| {
                let keep = !done;
                done = s.replicas >= reach;
                keep
            })
            .map(move |s| Step { at: s.at, replicas: s.replicas.min(reach) })
    }

    /// The documented path as text: `3 -> 5 -> 8`.
    pub(crate) fn path(&self) -> String {
        std::iter::once(self.min)
            .chain(self.steps().map(|s| s.replicas))
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// Whether the HPA acts on this demand (outside its tolerance, upwards).
    fn above(&self, d: &Demand) -> bool {
        d.ratio > 1.0 + self.tolerance
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

/// The most replicas that may have been in effect at `t`: a value first
/// read in one sample may have come right after the read before it began
/// (sampling under load is late and uneven: a fixed sample interval would
/// read a late sample as a fast step).
fn most_desired_at(samples: &[Sample], t: f64, start: i32) -> i32 {
    let mut most = samples.first().filter(|s| s.from <= t).map_or(start, |s| s.desired);
    for w in samples.windows(2) {
        if w[0].from < t {
            most = most.max(w[1].desired);
        }
    }
    most
}

/// First time desired replicas were at least `n`.
fn first_at_least(samples: &[Sample], n: i32) -> Option<f64> {
    samples.iter().find(|s| s.desired >= n).map(|s| s.at)
}

/// The path observed so far: each change of desired replicas.
fn observed_path(claim: &Claim, samples: &[Sample]) -> Vec<String> {
    let mut path = vec![claim.min.to_string()];
    let mut previous = claim.min;
    for s in samples {
        if s.desired != previous {
            path.push(format!("{} @{:.0}s", s.desired, s.at));
            previous = s.desired;
        }
    }
    path
}

/// Judges the samples so far; `now` is seconds since the load started.
pub(crate) fn judge(claim: &Claim, samples: &[Sample], now: f64) -> Verdict {
    let window = period(&claim.scale_up);
    let last_desired = samples.last().map_or(claim.min, |s| s.desired);
    // Every change against the policies and the exact path.
    let mut expected = claim.steps();
    let mut previous = claim.min;
    for s in samples {
        if s.desired > claim.max {
            return Verdict::Failed(format!(
                "desired {} replicas at {:.0} s, above the documented maxReplicas {}",
                s.desired, s.at, claim.max
            ));
        }
        if s.desired == previous {
            continue;
        }
        if s.desired > previous {
            // Base: the most that may have been in effect one period before
            // the latest instant this step may have been made.
            let base = most_desired_at(samples, s.at - window, claim.min);
            let allowed = claim.allowed_from(base);
            if s.desired > allowed {
                return Verdict::Failed(format!(
                    "scaled {previous} -> {} at {:.0} s; the documented policies allow at most {allowed} from {base} within {window:.0} s",
                    s.desired, s.at
                ));
            }
        }
        let step = expected.next();
        if step.is_none_or(|step| step.replicas != s.desired) {
            let wanted = step.map_or_else(|| format!("to stay at {}", claim.reach), |st| format!("{}", st.replicas));
            let path = observed_path(claim, samples).join(" -> ");
            // The HPA takes the smaller of what the metric asks and what the
            // policies allow: asking less than the step is a legal detour.
            return match (step, s.demand) {
                (Some(st), Some(d)) if d.asks < st.replicas => Verdict::NotVerified(format!(
                    "the load asked for {} replicas at {:.0} s, fewer than the documented step to {}: the HPA went {previous} -> {} as its policies allow, so the documented path {} was not tested (observed {path})",
                    d.asks,
                    s.at,
                    st.replicas,
                    s.desired,
                    claim.path()
                )),
                _ => Verdict::Failed(format!(
                    "scaled {previous} -> {} at {:.0} s, the documented path wants {wanted}{}: documented {}, observed {path}",
                    s.desired,
                    s.at,
                    s.demand.map_or_else(String::new, |d| format!(" (the metric asked for {})", d.asks)),
                    claim.path()
                )),
            };
        }
        previous = s.desired;
    }
    // The first sync that reports the demand scales up, or the documented
    // stabilization window later (0: in that same status).
    let stabilization = f64::from(claim.scale_up.stabilization_window_seconds);
    if let Some(seen) = samples.iter().find(|s| s.demand.is_some_and(|d| claim.above(&d))) {
        let deadline = seen.at + stabilization;
        let scaled = samples.iter().any(|s| s.at <= deadline && s.desired > claim.min);
        if !scaled && samples.last().is_some_and(|s| s.at >= deadline) {
            return Verdict::Failed(format!(
                "the HPA reported its metric at {:.2}x the target at {:.0} s and did not scale up within the documented scale-up stabilization window of {stabilization:.0} s (desired {})",
                seen.demand.map_or(0.0, |d| d.ratio),
                seen.at,
                claim.min
            ));
        }
    }
    let Some(first) = samples.iter().find(|s| s.desired > claim.min).map(|s| s.at) else {
        return if now > claim.latency_budget {
            Verdict::Failed(format!(
                "no scale-up within {:.0} s of load start (desired stayed {last_desired})",
                claim.latency_budget
            ))
        } else {
            Verdict::Pending
        };
    };
    // Each predicted step by its distance from the step before, as observed:
    // the policies' period runs from the controller's last scale event.
    let mut reached_at = first;
    let mut previous_step = Step { at: 0, replicas: claim.min };
    for (k, step) in claim.steps().enumerate() {
        let gap = f64::from(step.at) - f64::from(previous_step.at);
        let deadline = reached_at + gap + claim.late_tolerance;
        // Late for certain once a read begun after the deadline shows less.
        let read_after = samples.last().is_some_and(|s| s.from > deadline);
        match first_at_least(samples, step.replicas) {
            Some(at) => reached_at = at,
            None if read_after => {
                return Verdict::Failed(format!(
                    "predicted step {k} ({} replicas, {gap:.0} s after the step to {} seen at {reached_at:.0} s) not reached by {deadline:.0} s after load start: desired {last_desired}, observed {}",
                    step.replicas,
                    previous_step.replicas,
                    observed_path(claim, samples).join(" -> ")
                ));
            }
            None => return Verdict::Pending,
        }
        previous_step = step;
    }
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
        .map(|s| StepRow { replicas: s.replicas, predicted_at: Some(s.at), observed_at: None, late: None })
        .collect();
    let mut previous = claim.min;
    for s in samples {
        if s.desired != previous {
            let observed = first.map(|f| s.at - f);
            match rows.iter_mut().find(|r| r.replicas == s.desired && r.observed_at.is_none()) {
                Some(row) => row.observed_at = observed,
                None => {
                    rows.push(StepRow { replicas: s.desired, predicted_at: None, observed_at: observed, late: None })
                }
            }
            previous = s.desired;
        }
    }
    // Lateness against the step before, both as predicted and as observed.
    let mut before: Option<(u32, f64)> = None;
    for row in &mut rows {
        if let (Some(p), Some(o)) = (row.predicted_at, row.observed_at) {
            row.late = Some(before.map_or(o - f64::from(p), |(bp, bo)| (o - bo) - f64::from(p - bp)));
            before = Some((p, o));
        }
    }
    rows
}

pub(crate) fn markdown(rows: &[StepRow]) -> String {
    let mut md = String::from(
        "| replicas | predicted (s) | observed (s) | late after the step before (s) |\n|---|---|---|---|\n",
    );
    for r in rows {
        // Rounded first: -0.4 s shows as 0, not -0.
        let shown = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.0}", v.round() + 0.0));
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.replicas,
            shown(r.predicted_at.map(f64::from)),
            shown(r.observed_at),
            shown(r.late)
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbam_model::fixtures::ScalingPolicy;

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
            tolerance: 0.1,
            latency_budget: 90.0,
            late_tolerance: 20.0,
            ready_budget: 90.0,
        }
    }

    fn documented() -> Claim {
        claim(vec![(PolicyType::Percent, 50), (PolicyType::Pods, 2)])
    }

    /// Samples every 2 s of a timeline given as (from second, desired,
    /// ready); from `demand_from` on the metric asks for 20 replicas.
    fn samples_with(until: u32, demand_from: u32, steps: &[(u32, i32, i32)]) -> Vec<Sample> {
        (0..=until / 2)
            .map(|k| {
                let at = k * 2;
                let (_, desired, ready) =
                    steps.iter().rev().find(|(from, _, _)| *from <= at).copied().unwrap_or((0, 3, 3));
                let demand = Some(if at >= demand_from {
                    Demand { ratio: 4.0, asks: 20 }
                } else {
                    Demand { ratio: 1.0, asks: 3 }
                });
                Sample { from: f64::from(at), at: f64::from(at), desired, ready, demand }
            })
            .collect()
    }

    /// The HPA sees the demand in the sync of the first step.
    fn samples(until: u32, steps: &[(u32, i32, i32)]) -> Vec<Sample> {
        samples_with(until, steps.first().map_or(u32::MAX, |s| s.0), steps)
    }

    fn failure(v: Verdict) -> String {
        match v {
            Verdict::Failed(why) => why,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn the_documented_policies_bound_each_period() {
        let c = documented();
        assert_eq!([3, 5, 8, 12].map(|b| c.allowed_from(b)), [5, 8, 12, 15]);
        assert_eq!(claim(vec![(PolicyType::Pods, 1)]).allowed_from(3), 4);
        assert_eq!(c.path(), "3 -> 5 -> 8 -> 12 -> 15");
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
        let md = markdown(&rows);
        assert!(md.contains("| 8 | 60 | 62 | 2 |") && md.contains("| 15 | 180 | 182 | 0 |"), "{md}");
        let early = [StepRow { replicas: 8, predicted_at: Some(60), observed_at: Some(59.6), late: Some(-0.4) }];
        assert!(markdown(&early).contains("| 8 | 60 | 60 | 0 |"), "{}", markdown(&early));
    }

    #[test]
    fn a_sync_missed_by_a_moment_is_within_the_tolerance() {
        let s = samples(280, &[(36, 5, 5), (112, 8, 8), (172, 12, 12), (232, 15, 15)]);
        assert!(matches!(judge(&documented(), &s, 280.0), Verdict::Reached { .. }));
    }

    #[test]
    fn waits_while_a_step_is_still_within_its_window() {
        let s = samples(120, &[(36, 5, 5), (98, 8, 8)]);
        assert_eq!(judge(&documented(), &s, 120.0), Verdict::Pending);
    }

    #[test]
    fn each_step_is_judged_from_the_step_before() {
        // Each step one sync (15 s) after its period from the step before, as
        // the controller does when its syncs drift: 30 s late of the absolute
        // time by the third step, and on time by the policies.
        let s = samples(280, &[(36, 5, 5), (112, 8, 8), (188, 12, 12), (264, 15, 15)]);
        assert!(matches!(judge(&documented(), &s, 280.0), Verdict::Reached { .. }));
        let rows = table(&documented(), &s);
        assert_eq!(rows.iter().map(|r| r.late).collect::<Vec<_>>(), [Some(0.0), Some(16.0), Some(16.0), Some(16.0)]);
        assert!(markdown(&rows).contains("| 12 | 120 | 152 | 16 |"), "{}", markdown(&rows));
        // One step 21 s late after the one before fails, whatever came before.
        let s = samples(178, &[(36, 5, 5), (96, 8, 8)]);
        let why = failure(judge(&documented(), &s, 178.0));
        assert!(
            why.contains("step 2 (12 replicas, 60 s after the step to 8 seen at 96 s) not reached by 176 s")
                && why.contains("desired 8, observed 3 -> 5 @36s -> 8 @96s"),
            "{why}"
        );
    }

    #[test]
    fn a_late_sample_is_not_read_as_a_fast_step() {
        // Under load the sampler fell behind: the read that still showed 5
        // began at 81 s and was answered at 85 s, the next showed 8 at 88 s.
        // 8 -> 12 seen at 144 s may be 63 s after 5 -> 8: within the policies.
        let mut s = samples(144, &[(28, 5, 5), (88, 8, 8), (144, 12, 12)]);
        s.retain(|x| x.at <= 80.0 || x.at >= 88.0);
        s.insert(
            s.iter().position(|x| x.at >= 88.0).unwrap_or(s.len()),
            Sample { from: 81.0, at: 85.0, desired: 5, ready: 5, demand: Some(Demand { ratio: 4.0, asks: 20 }) },
        );
        assert_eq!(judge(&documented(), &s, 144.0), Verdict::Pending);
        // Reads both answered promptly 2 s apart: 8 -> 12 56 s after 5 -> 8 is too fast.
        let s = samples(146, &[(28, 5, 5), (88, 8, 8), (144, 12, 12)]);
        let why = failure(judge(&documented(), &s, 146.0));
        assert!(why.contains("scaled 8 -> 12 at 144 s") && why.contains("at most 8 from 5"), "{why}");
    }

    #[test]
    fn a_ninety_second_period_fails_the_second_step() {
        let s = samples(120, &[(36, 5, 5), (126, 8, 8)]);
        let why = failure(judge(&documented(), &s, 118.0));
        assert!(why.contains("step 1 (8 replicas") && why.contains("not reached by 116 s"), "{why}");
    }

    #[test]
    fn a_scale_up_stabilization_window_fails_at_the_first_demand_not_acted_on() {
        // The metric is reported above target at 36 s; a 60 s window holds 3 until 96 s.
        let s = samples_with(40, 36, &[(96, 5, 5)]);
        let why = failure(judge(&documented(), &s, 40.0));
        assert!(
            why.contains("4.00x the target at 36 s") && why.contains("stabilization window of 0 s (desired 3)"),
            "{why}"
        );
        // Within the tolerance the HPA does nothing, and neither does the judge.
        let quiet: Vec<Sample> = samples_with(40, 99, &[])
            .into_iter()
            .map(|s| Sample { demand: Some(Demand { ratio: 1.1, asks: 4 }), ..s })
            .collect();
        assert_eq!(judge(&documented(), &quiet, 40.0), Verdict::Pending);
    }

    #[test]
    fn select_policy_min_leaves_the_documented_path() {
        let s = samples(100, &[(36, 5, 5), (96, 7, 7)]);
        let why = failure(judge(&documented(), &s, 100.0));
        assert!(why.contains("scaled 5 -> 7 at 96 s, the documented path wants 8 (the metric asked for 20)"), "{why}");
        assert!(why.contains("observed 3 -> 5 @36s -> 7 @96s"), "{why}");
    }

    #[test]
    fn a_detour_the_load_asked_for_is_not_verified() {
        let mut s = samples(100, &[(36, 5, 5), (96, 7, 7)]);
        for x in s.iter_mut().filter(|x| x.at >= 96.0) {
            x.demand = Some(Demand { ratio: 1.4, asks: 7 });
        }
        let Verdict::NotVerified(why) = judge(&documented(), &s, 100.0) else { panic!("expected not verified") };
        assert!(why.contains("asked for 7 replicas at 96 s, fewer than the documented step to 8"), "{why}");
    }

    #[test]
    fn an_intermediate_count_fails_the_path() {
        let s = samples(60, &[(36, 4, 4)]);
        let why = failure(judge(&documented(), &s, 60.0));
        assert!(why.contains("scaled 3 -> 4 at 36 s, the documented path wants 5"), "{why}");
    }

    #[test]
    fn a_lower_maximum_fails_at_the_step_it_cannot_reach() {
        let s = samples(250, &[(36, 5, 5), (98, 8, 8), (158, 10, 10)]);
        let why = failure(judge(&documented(), &s, 250.0));
        assert!(why.contains("8 -> 10 at 158 s, the documented path wants 12"), "{why}");
    }

    #[test]
    fn a_step_faster_than_the_policies_fails_at_once() {
        let s = samples(70, &[(36, 5, 5), (66, 8, 8)]);
        let why = failure(judge(&documented(), &s, 70.0));
        assert!(why.contains("5 -> 8 at 66 s") && why.contains("at most 5 from 3"), "{why}");
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
        assert_eq!(c.path(), "3 -> 5 -> 8");
    }
}
