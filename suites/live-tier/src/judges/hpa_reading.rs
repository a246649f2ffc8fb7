//! Reading a live HorizontalPodAutoscaler: the replicas each metric asks
//! for (from status.currentMetrics, the controller's own inputs), its
//! conditions, and how its spec differs from the documented one.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricStatus};
use serde::Serialize;

use cbam_model::fixtures::{Hpa, ScalingRules};
use cbam_model::quantity::Quantity;

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
    let behavior = spec.behavior.as_ref();
    for (direction, live, documented, default_window) in [
        ("scaleUp", behavior.and_then(|b| b.scale_up.as_ref()), &documented.scale_up, 0),
        ("scaleDown", behavior.and_then(|b| b.scale_down.as_ref()), &documented.scale_down, 300),
    ] {
        out.extend(rule_differences(direction, live, documented, default_window));
    }
    out
}

/// One direction's behavior against the documented rules; an unset field
/// is compared as the API server's default.
fn rule_differences(
    direction: &str,
    live: Option<&HPAScalingRules>,
    documented: &ScalingRules,
    default_window: i32,
) -> Vec<String> {
    let mut out = Vec::new();
    let window = live.and_then(|r| r.stabilization_window_seconds).unwrap_or(default_window);
    if window != documented.stabilization_window_seconds {
        out.push(format!(
            "{direction} stabilizationWindowSeconds {window} (documented {})",
            documented.stabilization_window_seconds
        ));
    }
    let select = live.and_then(|r| r.select_policy.clone()).unwrap_or_else(|| "Max".to_owned());
    let wanted = format!("{:?}", documented.select_policy);
    if select != wanted {
        out.push(format!("{direction} selectPolicy {select} (documented {wanted})"));
    }
    let live_policies = live
        .and_then(|r| r.policies.as_ref())
        .map(|ps| ps.iter().map(|p| format!("{} {}/{}s", p.type_, p.value, p.period_seconds)).collect::<Vec<_>>())
        .unwrap_or_default()
        .join(", ");
    let documented_policies = documented
        .policies
        .iter()
        .map(|p| format!("{:?} {}/{}s", p.type_, p.value, p.period_seconds))
        .collect::<Vec<_>>()
        .join(", ");
    if live_policies != documented_policies {
        out.push(format!("{direction} policies [{live_policies}] (documented [{documented_policies}])"));
    }
    out
}

/// The documented target of a metric named as in [`Proposal::metric`].
pub(crate) fn documented_target(documented: &Hpa, metric: &str) -> Option<f64> {
    match metric {
        "resource/cpu" => Some(f64::from(documented.cpu_utilization)),
        "resource/memory" => Some(f64::from(documented.memory_utilization)),
        m if m.strip_prefix("pods/") == Some(documented.pods_metric.name.as_str()) => {
            Quantity::parse(&documented.pods_metric.average_value).ok().map(|q| q.0)
        }
        _ => None,
    }
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
        let documented = cbam_model::fixtures::Expectations::load(&fixtures, &[]).expect("fixtures").governance.hpa;
        let found = differences(&hpa(SPEC), &documented);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("metric `resource/memory target 80` missing"), "{found:?}");
        assert!(found[1].starts_with("scaleUp policies [] (documented [Percent 50/60s, Pods 2/60s])"), "{found:?}");
        assert_eq!(found[2], "scaleDown selectPolicy Max (documented Min)");
        let infra =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/hpa.yaml"))
                .expect("infra/hpa.yaml");
        assert_eq!(differences(&hpa(&infra), &documented), Vec::<String>::new());
        let min = hpa(&infra.replace("      selectPolicy: Max", "      selectPolicy: Min"));
        assert_eq!(differences(&min, &documented), ["scaleUp selectPolicy Min (documented Max)"]);
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
