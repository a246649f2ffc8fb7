//! Judges the scale-down after the load stopped (t = 0): the HPA must hold
//! through its stabilization window, counted from when its metric fell
//! below the target (the last recommendation for the current count, not
//! the load's stop: runs outlive it), step down no faster than the
//! documented policies, and reach minReplicas by the time the window plus
//! one period per replica has passed after that.

use crate::judges::scaling_timeline::{self, Sample, Verdict};
use cbam_model::fixtures::{PolicyType, ScalingRules, SelectPolicy};

#[derive(Debug, Clone)]
pub(crate) struct DownClaim {
    pub(crate) min: i32,
    pub(crate) from: i32,
    pub(crate) rules: ScalingRules,
    /// The HPA's tolerance: a ratio under 1 - this asks for fewer replicas.
    pub(crate) tolerance: f64,
    /// The metric must fall below its target within this long of the stop.
    pub(crate) demand_budget: f64,
    pub(crate) late_tolerance: f64,
    pub(crate) interval: f64,
    /// The HPA controller's sync period: its last recommendation for the
    /// current count came from the sync before the one whose status first
    /// shows the metric below the target, up to this long before.
    pub(crate) sync_period: f64,
}

impl DownClaim {
    /// The fewest replicas the documented policies allow from `base`.
    pub(crate) fn allowed_from(&self, base: i32) -> i32 {
        let proposals = self.rules.policies.iter().map(|p| match p.type_ {
            PolicyType::Pods => base - p.value,
            PolicyType::Percent => {
                #[expect(clippy::cast_possible_truncation, reason = "replica counts are small")]
                let kept = (f64::from(base) * (1.0 - f64::from(p.value) / 100.0)) as i32;
                kept
            }
        });
        // Min selects the policy with the smallest change: the most replicas kept.
        let bound = match self.rules.select_policy {
            SelectPolicy::Min => proposals.max(),
            SelectPolicy::Max => proposals.min(),
            SelectPolicy::Disabled => Some(base),
        };
        bound.unwrap_or(base).max(self.min)
    }

    fn period(&self) -> f64 {
        scaling_timeline::period(&self.rules)
    }

    fn window(&self) -> f64 {
        f64::from(self.rules.stabilization_window_seconds)
    }

    /// By then the HPA must be at min.
    pub(crate) fn deadline(&self, demand_ends: f64) -> f64 {
        demand_ends + self.window() + f64::from(self.from - self.min) * self.period() + 2.0 * self.late_tolerance
    }

    /// When the HPA first reported its metric below the target (by more
    /// than its tolerance): the stabilization window starts there.
    pub(crate) fn demand_ends(&self, samples: &[Sample]) -> Option<f64> {
        samples.iter().find(|s| s.demand.is_some_and(|d| d.ratio < 1.0 - self.tolerance)).map(|s| s.at)
    }
}

pub(crate) fn judge(claim: &DownClaim, samples: &[Sample], now: f64) -> Verdict {
    let demand_ends = claim.demand_ends(samples);
    let mut previous = claim.from;
    for s in samples {
        if s.desired < previous {
            let Some(ends) = demand_ends.filter(|e| *e <= s.at) else {
                return Verdict::Failed(format!(
                    "scaled {previous} -> {} at {:.0} s after the load stopped, while the HPA still reported its metric at or above the target",
                    s.desired, s.at
                ));
            };
            if s.at < ends - claim.sync_period + claim.window() - claim.interval {
                return Verdict::Failed(format!(
                    "scaled {previous} -> {} at {:.0} s after the load stopped, inside the {:.0} s stabilization window from the HPA sync before {ends:.0} s (when the metric fell below the target)",
                    s.desired,
                    s.at,
                    claim.window()
                ));
            }
            let base = scaling_timeline::desired_at(samples, s.at - claim.period() + claim.interval, claim.from);
            let allowed = claim.allowed_from(base);
            if s.desired < allowed {
                return Verdict::Failed(format!(
                    "scaled {previous} -> {} at {:.0} s; the documented policies keep at least {allowed} from {base} within {:.0} s",
                    s.desired,
                    s.at,
                    claim.period()
                ));
            }
        }
        previous = s.desired;
    }
    let last = samples.last().map_or(claim.from, |s| s.desired);
    let Some(ends) = demand_ends else {
        return if now > claim.demand_budget {
            Verdict::Failed(format!(
                "the HPA did not report its metric below the target within {:.0} s of the load's stop (desired {last})",
                claim.demand_budget
            ))
        } else {
            Verdict::Pending
        };
    };
    let first = samples.iter().find(|s| s.desired < claim.from).map(|s| s.at);
    match (first, samples.iter().find(|s| s.desired <= claim.min)) {
        (Some(first), Some(done)) => Verdict::Reached { latency: first, ready_at: done.at },
        _ if now > claim.deadline(ends) => Verdict::Failed(format!(
            "not at {} replicas {:.0} s after the load stopped (the metric below the target from {ends:.0} s): desired {last}",
            claim.min,
            claim.deadline(ends)
        )),
        _ => Verdict::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judges::scaling_timeline::Demand;
    use cbam_model::fixtures::ScalingPolicy;

    fn documented() -> DownClaim {
        DownClaim {
            min: 3,
            from: 15,
            rules: ScalingRules {
                stabilization_window_seconds: 300,
                select_policy: SelectPolicy::Min,
                policies: vec![
                    ScalingPolicy { type_: PolicyType::Percent, value: 25, period_seconds: 60 },
                    ScalingPolicy { type_: PolicyType::Pods, value: 1, period_seconds: 60 },
                ],
            },
            tolerance: 0.1,
            demand_budget: 600.0,
            late_tolerance: 30.0,
            interval: 2.0,
            sync_period: 15.0,
        }
    }

    /// Samples every 2 s; the metric falls below its target at 150 s.
    fn samples(until: u32, steps: &[(u32, i32)]) -> Vec<Sample> {
        samples_below_from(until, 150, steps)
    }

    fn samples_below_from(until: u32, below: u32, steps: &[(u32, i32)]) -> Vec<Sample> {
        (0..=until / 2)
            .map(|k| {
                let at = k * 2;
                let desired = steps.iter().rev().find(|(from, _)| *from <= at).map_or(15, |s| s.1);
                let ratio = if at >= below { 0.2 } else { 1.0 };
                let demand = Some(Demand { ratio, asks: 3 });
                Sample { from: f64::from(at), at: f64::from(at), desired, ready: desired, demand }
            })
            .collect()
    }

    #[test]
    fn one_pod_a_minute_after_the_window_reaches_min() {
        let steps: Vec<(u32, i32)> = (0..12).map(|k| (460 + 60 * k, 14 - i32::try_from(k).unwrap_or(0))).collect();
        let s = samples(1200, &steps);
        assert_eq!(judge(&documented(), &s, 1200.0), Verdict::Reached { latency: 460.0, ready_at: 1120.0 });
        assert_eq!(documented().allowed_from(15), 14);
    }

    #[test]
    fn the_window_counts_from_the_metric_not_the_load() {
        // 310 s after the stop, but 160 s after the metric fell.
        let s = samples(320, &[(310, 14)]);
        let Verdict::Failed(why) = judge(&documented(), &s, 320.0) else { panic!("expected a failure") };
        assert!(why.contains("inside the 300 s stabilization window from the HPA sync before 150 s"), "{why}");
        // Seen below at 150 s, so the last sync asking for 15 was at most 15 s
        // earlier: a step 286 s after it is the controller's (measured: 116 s
        // and 402 s in a full nightly run), 280 s is not.
        assert!(matches!(judge(&documented(), &samples(440, &[(436, 14)]), 440.0), Verdict::Pending));
        assert!(matches!(judge(&documented(), &samples(440, &[(430, 14)]), 440.0), Verdict::Failed(_)));
        let early = samples_below_from(200, 300, &[(120, 14)]);
        let Verdict::Failed(why) = judge(&documented(), &early, 200.0) else { panic!("expected a failure") };
        assert!(why.contains("while the HPA still reported its metric at or above the target"), "{why}");
    }

    #[test]
    fn two_pods_within_a_period_fails() {
        let s = samples(520, &[(460, 14), (490, 13)]);
        assert!(
            matches!(judge(&documented(), &s, 520.0), Verdict::Failed(w) if w.contains("keep at least 14 from 15"))
        );
    }

    #[test]
    fn not_down_by_the_deadline_fails() {
        let d = documented().deadline(150.0);
        assert!(matches!(judge(&documented(), &samples(1400, &[(460, 14)]), d + 1.0), Verdict::Failed(_)));
        assert_eq!(judge(&documented(), &samples(400, &[]), 400.0), Verdict::Pending);
        let never = samples_below_from(602, 9999, &[]);
        assert!(matches!(judge(&documented(), &never, 602.0), Verdict::Failed(w) if w.contains("within 600 s")));
    }
}
