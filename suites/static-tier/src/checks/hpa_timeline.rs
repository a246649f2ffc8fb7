//! Predicts the HPA's replica timeline from its `behavior`, replaying the
//! controller's rate limiting (stabilization windows, per-period policies,
//! selectPolicy) at its default 15 s sync period, so the live tier has a
//! timeline to compare the observed autoscaling against.

use k8s_openapi::api::autoscaling::v2::{HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler};

use crate::context::Context;
use cbam_model::fixtures::Step;
use cbam_model::outcome::Recorder;

/// kube-controller-manager's --horizontal-pod-autoscaler-sync-period default.
const SYNC_SECONDS: i64 = 15;
/// Give up predicting after this long (a timeline that never ends is a finding).
const HORIZON_SECONDS: i64 = 3600;

#[derive(Debug, Clone)]
struct Rules {
    window: i64,
    select: String,
    policies: Vec<(String, i32, i64)>,
}

impl Rules {
    fn from_spec(spec: Option<&HPAScalingRules>, up: bool) -> Self {
        // Kubernetes' defaults when behavior (or one direction) is unset.
        let (window, policies): (i64, Vec<(String, i32, i64)>) = if up {
            (0, vec![("Pods".into(), 4, 15), ("Percent".into(), 100, 15)])
        } else {
            (300, vec![("Percent".into(), 100, 15)])
        };
        let Some(spec) = spec else {
            return Rules { window, select: "Max".into(), policies };
        };
        let policies = match &spec.policies {
            Some(list) => list
                .iter()
                .map(|p: &HPAScalingPolicy| (p.type_.clone(), p.value, i64::from(p.period_seconds)))
                .collect(),
            None => policies,
        };
        Rules {
            window: spec.stabilization_window_seconds.map_or(window, i64::from),
            select: spec.select_policy.clone().unwrap_or_else(|| "Max".into()),
            policies,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Event {
    at: i64,
    change: i32,
}

fn changed_within(events: &[Event], now: i64, period: i64, up: bool) -> i32 {
    events.iter().filter(|e| e.at + period > now && (e.change > 0) == up).map(|e| e.change.abs()).sum()
}

#[expect(clippy::cast_possible_truncation, reason = "replica counts are small")]
fn limit(rules: &Rules, current: i32, events: &[Event], now: i64, up: bool) -> i32 {
    if rules.select == "Disabled" {
        return current;
    }
    // Max picks the policy allowing the biggest change, Min the smallest.
    let biggest = rules.select != "Min";
    let mut result: Option<i32> = None;
    for (kind, value, period) in &rules.policies {
        let added = changed_within(events, now, *period, true);
        let deleted = changed_within(events, now, *period, false);
        let start = current - added + deleted;
        let proposed = match (kind.as_str(), up) {
            ("Pods", true) => start + value,
            ("Pods", false) => start - value,
            (_, true) => (f64::from(start) * (1.0 + f64::from(*value) / 100.0)).ceil() as i32,
            (_, false) => (f64::from(start) * (1.0 - f64::from(*value) / 100.0)) as i32,
        };
        let pick_max = biggest == up;
        result = Some(match result {
            None => proposed,
            Some(r) if pick_max => r.max(proposed),
            Some(r) => r.min(proposed),
        });
    }
    result.unwrap_or(current)
}

/// Replays syncs from `start` replicas: recommendations are `before` up to
/// t=0 and `after` from the first sync after it.
fn replay(hpa: &HorizontalPodAutoscaler, start: i32, before: i32, after: i32, first_sync: i64) -> Vec<Step> {
    let Some(spec) = hpa.spec.as_ref() else {
        return Vec::new();
    };
    let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
    let behavior = spec.behavior.as_ref();
    let up = Rules::from_spec(behavior.and_then(|b| b.scale_up.as_ref()), true);
    let down = Rules::from_spec(behavior.and_then(|b| b.scale_down.as_ref()), false);
    let longest = up.window.max(down.window);
    let mut history: Vec<(i64, i32)> = (0..=longest / SYNC_SECONDS).map(|k| (-k * SYNC_SECONDS, before)).collect();
    let (mut current, mut events, mut steps) = (start, Vec::<Event>::new(), Vec::new());
    let mut now = first_sync;
    while now <= HORIZON_SECONDS {
        let raw = after;
        let in_window = |window: i64| history.iter().filter(move |(at, _)| *at > now - window).map(|(_, r)| *r);
        let up_rec = in_window(up.window).fold(raw, i32::min);
        let down_rec = in_window(down.window).fold(raw, i32::max);
        let stabilized = current.max(up_rec).min(down_rec);
        history.push((now, raw));
        let desired = if stabilized > current {
            stabilized.min(limit(&up, current, &events, now, true).max(current).min(max))
        } else if stabilized < current {
            stabilized.max(limit(&down, current, &events, now, false).min(current).max(min))
        } else {
            current
        };
        let desired = desired.clamp(min, max);
        if desired != current {
            events.push(Event { at: now, change: desired - current });
            current = desired;
            steps.push(Step { at: u32::try_from(now).unwrap_or(u32::MAX), replicas: current });
        }
        if current == after.clamp(min, max) {
            break;
        }
        now += SYNC_SECONDS;
    }
    steps
}

/// (scale-up from minReplicas under demand beyond maxReplicas,
///  scale-down from maxReplicas once demand falls to nothing)
pub(crate) fn predict(hpa: &HorizontalPodAutoscaler) -> (Vec<Step>, Vec<Step>) {
    let Some(spec) = hpa.spec.as_ref() else {
        return (Vec::new(), Vec::new());
    };
    let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
    // Up: the first sync that sees the load is t=0. Down: the last sync that
    // still saw it is t=0, so windows count from the last high recommendation.
    let scale_up = replay(hpa, min, min, max.saturating_mul(4), 0);
    let scale_down = replay(hpa, max, max, 0, SYNC_SECONDS);
    (scale_up, scale_down)
}

pub(crate) fn describe(start: i32, steps: &[Step]) -> String {
    let mut out = start.to_string();
    for step in steps {
        out.push_str(&format!(" -> {} @{}s", step.replicas, step.at));
    }
    out
}

pub(crate) fn timeline(cx: &Context, r: &mut Recorder) {
    let want = &cx.governance_fixture.hpa;
    let object = cx.governance_label("HorizontalPodAutoscaler", &want.name);
    let Some(hpa) = cx.hpa() else {
        return r.missing(&object, "object");
    };
    let (up, down) = predict(hpa);
    let max = hpa.spec.as_ref().map_or(0, |s| s.max_replicas);
    let min = hpa.spec.as_ref().and_then(|s| s.min_replicas).unwrap_or(1);
    r.equal(
        &object,
        "predicted scale-up timeline",
        describe(want.min_replicas, &want.predicted.scale_up),
        describe(min, &up),
    );
    r.equal(
        &object,
        "predicted scale-down timeline",
        describe(want.max_replicas, &want.predicted.scale_down),
        describe(max, &down),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(yaml: &str) -> HorizontalPodAutoscaler {
        serde_norway::from_str(yaml).expect("valid HPA")
    }

    const DOCUMENTED: &str = "
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: t}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}
  minReplicas: 3
  maxReplicas: 15
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      selectPolicy: Max
      policies: [{type: Percent, value: 50, periodSeconds: 60}, {type: Pods, value: 2, periodSeconds: 60}]
    scaleDown:
      stabilizationWindowSeconds: 300
      selectPolicy: Min
      policies: [{type: Percent, value: 25, periodSeconds: 60}, {type: Pods, value: 1, periodSeconds: 60}]
";

    #[test]
    fn documented_behavior_scales_up_in_four_minute_steps() {
        let (up, _) = predict(&hpa(DOCUMENTED));
        assert_eq!(describe(3, &up), "3 -> 5 @0s -> 8 @60s -> 12 @120s -> 15 @180s");
    }

    #[test]
    fn documented_behavior_scales_down_one_pod_a_minute_after_the_window() {
        let (_, down) = predict(&hpa(DOCUMENTED));
        assert_eq!(down.first(), Some(&Step { at: 300, replicas: 14 }));
        assert_eq!(down.last(), Some(&Step { at: 960, replicas: 3 }));
        assert_eq!(down.len(), 12);
    }

    #[test]
    fn one_pod_per_minute_is_slower() {
        let slow = DOCUMENTED.replace(
            "policies: [{type: Percent, value: 50, periodSeconds: 60}, {type: Pods, value: 2, periodSeconds: 60}]",
            "policies: [{type: Pods, value: 1, periodSeconds: 60}]",
        );
        let (up, _) = predict(&hpa(&slow));
        assert_eq!(up.len(), 12);
        assert_eq!(up.last(), Some(&Step { at: 660, replicas: 15 }));
    }

    #[test]
    fn default_behavior_doubles_every_sync() {
        let (up, _) = predict(&hpa(
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: t}\nspec:\n  scaleTargetRef: {kind: Deployment, name: d}\n  minReplicas: 2\n  maxReplicas: 10\n",
        ));
        assert_eq!(describe(2, &up), "2 -> 6 @0s -> 10 @15s");
    }
}
