//! Reading a live HorizontalPodAutoscaler: the replicas each metric asks
//! for (from status.currentMetrics, the controller's own inputs), its
//! conditions, and how its spec differs from the documented one.

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec, MetricStatus};
use serde::Serialize;

use crate::fixtures::{Hpa, PolicyType};
use crate::quantity::Quantity;

/// What one metric of the HPA currently proposes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Proposal {
    /// `pods/<name>` or `resource/<name>`.
    pub(crate) metric: String,
    pub(crate) current: f64,
    pub(crate) target: f64,
    /// ceil(currentReplicas * current / target), as the controller computes it
    /// (before its 10 % tolerance and the behavior's rate limits).
    pub(crate) replicas: i32,
}

fn key_of_spec(m: &MetricSpec) -> Option<(String, f64)> {
    match m.type_.as_str() {
        "Resource" => {
            let r = m.resource.as_ref()?;
            Some((format!("resource/{}", r.name), f64::from(r.target.average_utilization?)))
        }
        "Pods" => {
            let p = m.pods.as_ref()?;
            let target = Quantity::parse(&p.target.average_value.as_ref()?.0).ok()?.0;
            Some((format!("pods/{}", p.metric.name), target))
        }
        _ => None,
    }
}

fn key_of_status(m: &MetricStatus) -> Option<(String, f64)> {
    match m.type_.as_str() {
        "Resource" => {
            let r = m.resource.as_ref()?;
            Some((format!("resource/{}", r.name), f64::from(r.current.average_utilization?)))
        }
        "Pods" => {
            let p = m.pods.as_ref()?;
            let current = Quantity::parse(&p.current.average_value.as_ref()?.0).ok()?.0;
            Some((format!("pods/{}", p.metric.name), current))
        }
        _ => None,
    }
}

/// Per-metric proposals; a metric the controller could not read is absent.
pub(crate) fn proposals(hpa: &HorizontalPodAutoscaler) -> Vec<Proposal> {
    let targets: Vec<(String, f64)> = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .map(|m| m.iter().filter_map(key_of_spec).collect())
        .unwrap_or_default();
    let Some(status) = hpa.status.as_ref() else { return Vec::new() };
    let current_replicas = f64::from(status.current_replicas.unwrap_or(0));
    status
        .current_metrics
        .iter()
        .flatten()
        .filter_map(key_of_status)
        .filter_map(|(metric, current)| {
            let target = targets.iter().find(|(k, _)| *k == metric)?.1;
            #[expect(clippy::cast_possible_truncation, reason = "replica counts are small")]
            // The ratio first, as the controller does; the epsilon absorbs float noise (2.8/2*5 = 7).
            let replicas = if target > 0.0 { (current / target * current_replicas - 1e-9).ceil() as i32 } else { 0 };
            Some(Proposal { metric, current, target, replicas })
        })
        .collect()
}

/// The conditions that are not as they should be, one line each.
pub(crate) fn troubled_conditions(hpa: &HorizontalPodAutoscaler) -> Vec<String> {
    hpa.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status != "True" || c.type_ == "ScalingLimited")
        .map(|c| {
            format!(
                "{}={} {}: {}",
                c.type_,
                c.status,
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
        .collect()
}

/// How the live HPA's spec differs from the documented one, one item each.
pub(crate) fn differences(hpa: &HorizontalPodAutoscaler, documented: &Hpa) -> Vec<String> {
    let Some(spec) = hpa.spec.as_ref() else { return vec!["no spec".into()] };
    let mut out = Vec::new();
    let min = spec.min_replicas.unwrap_or(1);
    if min != documented.min_replicas {
        out.push(format!("minReplicas {min} (documented {})", documented.min_replicas));
    }
    if spec.max_replicas != documented.max_replicas {
        out.push(format!("maxReplicas {} (documented {})", spec.max_replicas, documented.max_replicas));
    }
    let live: Vec<String> =
        spec.metrics.iter().flatten().filter_map(key_of_spec).map(|(k, t)| format!("{k} target {t}")).collect();
    let wanted = [
        format!("resource/cpu target {}", f64::from(documented.cpu_utilization)),
        format!("resource/memory target {}", f64::from(documented.memory_utilization)),
        format!(
            "pods/{} target {}",
            documented.pods_metric.name,
            Quantity::parse(&documented.pods_metric.average_value).map_or(f64::NAN, |q| q.0)
        ),
    ];
    for w in &wanted {
        if !live.contains(w) {
            out.push(format!("metric `{w}` missing (live: {})", live.join(", ")));
        }
    }
    let policies = |list: Option<Vec<(String, i32, i32)>>| {
        list.unwrap_or_default().iter().map(|(t, v, p)| format!("{t} {v}/{p}s")).collect::<Vec<_>>().join(", ")
    };
    let live_up = policies(
        spec.behavior
            .as_ref()
            .and_then(|b| b.scale_up.as_ref())
            .and_then(|u| u.policies.as_ref())
            .map(|ps| ps.iter().map(|p| (p.type_.clone(), p.value, p.period_seconds)).collect()),
    );
    let documented_up = policies(Some(
        documented
            .scale_up
            .policies
            .iter()
            .map(|p| {
                let t = match p.type_ {
                    PolicyType::Pods => "Pods",
                    PolicyType::Percent => "Percent",
                };
                (t.to_owned(), p.value, p.period_seconds)
            })
            .collect(),
    ));
    if live_up != documented_up {
        out.push(format!("scaleUp policies [{live_up}] (documented [{documented_up}])"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(yaml: &str) -> HorizontalPodAutoscaler {
        serde_norway::from_str(yaml).expect("hpa")
    }

    const SPEC: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}
  minReplicas: 3
  maxReplicas: 15
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
    - type: Pods
      pods: {metric: {name: cbam_pipeline_active_runs}, target: {type: AverageValue, averageValue: '2'}}
status:
  currentReplicas: 5
  desiredReplicas: 8
  currentMetrics:
    - type: Resource
      resource: {name: cpu, current: {averageUtilization: 7, averageValue: 4m}}
    - type: Pods
      pods: {metric: {name: cbam_pipeline_active_runs}, current: {averageValue: 2800m}}
  conditions:
    - {type: AbleToScale, status: 'True', reason: ScaleDownStabilized, message: ok}
    - {type: ScalingActive, status: 'False', reason: FailedGetPodsMetric, message: no metric}
";

    #[test]
    fn computes_each_metrics_proposal_as_the_controller_does() {
        let p = proposals(&hpa(SPEC));
        assert_eq!(
            p.iter().map(|p| (p.metric.as_str(), p.replicas)).collect::<Vec<_>>(),
            [("resource/cpu", 1), ("pods/cbam_pipeline_active_runs", 7)]
        );
    }

    #[test]
    fn names_each_difference_from_the_documented_hpa() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let documented = crate::fixtures::Expectations::load(&fixtures, &[]).expect("fixtures").governance.hpa;
        let found = differences(&hpa(SPEC), &documented);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("metric `resource/memory target 80` missing"), "{found:?}");
        assert!(found[1].starts_with("scaleUp policies [] (documented [Percent 50/60s, Pods 2/60s])"), "{found:?}");
        let lower = hpa(&SPEC
            .replace("maxReplicas: 15", "maxReplicas: 10")
            .replace("active_runs}, target", "runs_active}, target"));
        let found = differences(&lower, &documented);
        assert!(found.contains(&"maxReplicas 10 (documented 15)".to_owned()), "{found:?}");
        assert!(
            found.iter().any(|d| d.starts_with("metric `pods/cbam_pipeline_active_runs target 2` missing")),
            "{found:?}"
        );
    }

    #[test]
    fn names_conditions_that_are_not_true() {
        assert_eq!(troubled_conditions(&hpa(SPEC)), ["ScalingActive=False FailedGetPodsMetric: no metric"]);
    }
}
