//! Production governance objects against fixtures/governance.yaml.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, MetricSpec};

use crate::checks::workload::{compare_quantities, int_or_string};
use crate::context::Context;
use cbam_model::fixtures::{PolicyType, ScalingRules, SelectPolicy};
use cbam_model::outcome::{Recorder, shown};
use cbam_model::quantity::Quantity;

fn namespace(cx: &Context, r: &mut Recorder, object: &str, found: Option<&String>) {
    // Governance must land in the environment it governs.
    r.equal(object, "metadata.namespace", cx.fixture.namespace.clone(), shown(found));
}

fn resource_target(metrics: &[MetricSpec], name: &str) -> Option<String> {
    metrics
        .iter()
        .filter_map(|m| m.resource.as_ref())
        .find(|m| m.name == name)
        .map(|m| format!("{} {}", m.target.type_, shown(m.target.average_utilization)))
}

/// Rules as one comparable line: `window 300s, select Min, Percent 25/60s, Pods 1/60s`.
pub(crate) fn rules_line(window: Option<i32>, select: Option<&str>, policies: Vec<(String, i32, i32)>) -> String {
    let policies: Vec<String> = policies.iter().map(|(t, v, p)| format!("{t} {v}/{p}s")).collect();
    format!("window {}s, select {}, {}", shown(window), select.unwrap_or("Max (default)"), policies.join(", "))
}

fn fixture_rules(rules: &ScalingRules) -> String {
    let select = match rules.select_policy {
        SelectPolicy::Max => "Max",
        SelectPolicy::Min => "Min",
        SelectPolicy::Disabled => "Disabled",
    };
    let policies = rules
        .policies
        .iter()
        .map(|p| {
            let kind = match p.type_ {
                PolicyType::Percent => "Percent",
                PolicyType::Pods => "Pods",
            };
            (kind.to_owned(), p.value, p.period_seconds)
        })
        .collect();
    rules_line(Some(rules.stabilization_window_seconds), Some(select), policies)
}

fn spec_rules(rules: Option<&HPAScalingRules>) -> String {
    let Some(rules) = rules else {
        return "absent (Kubernetes defaults)".to_owned();
    };
    let policies = rules.policies.iter().flatten().map(|p| (p.type_.clone(), p.value, p.period_seconds)).collect();
    rules_line(rules.stabilization_window_seconds, rules.select_policy.as_deref(), policies)
}

pub(crate) fn hpa(cx: &Context, r: &mut Recorder) {
    let want = &cx.governance_fixture.hpa;
    let object = cx.governance_label("HorizontalPodAutoscaler", &want.name);
    let Some(hpa) = cx.hpa() else {
        return r.missing(&object, "object");
    };
    r.equal(&object, "metadata.name", want.name.clone(), shown(hpa.metadata.name.clone()));
    namespace(cx, r, &object, hpa.metadata.namespace.as_ref());
    let Some(spec) = hpa.spec.as_ref() else {
        return r.missing(&object, "spec");
    };
    r.equal(&object, "minReplicas", want.min_replicas.to_string(), shown(spec.min_replicas));
    r.equal(&object, "maxReplicas", want.max_replicas.to_string(), spec.max_replicas.to_string());
    let metrics = spec.metrics.clone().unwrap_or_default();
    r.at("metrics").equal(
        &object,
        "cpu target",
        format!("Utilization {}", want.cpu_utilization),
        shown(resource_target(&metrics, "cpu")),
    );
    r.at("metrics").equal(
        &object,
        "memory target",
        format!("Utilization {}", want.memory_utilization),
        shown(resource_target(&metrics, "memory")),
    );
    let pods = metrics.iter().filter_map(|m| m.pods.as_ref()).find(|p| p.metric.name == want.pods_metric.name);
    let pods_target = pods.map(|p| {
        let value = p.target.average_value.as_ref().map(|q| q.0.clone());
        (p.target.type_.clone(), value)
    });
    let pods_ok = pods_target.as_ref().is_some_and(|(kind, value)| {
        kind == "AverageValue"
            && value
                .as_deref()
                .map(Quantity::parse)
                .and_then(Result::ok)
                .zip(Quantity::parse(&want.pods_metric.average_value).ok())
                .is_some_and(|(a, b)| a.same(b))
    });
    r.at("metrics").record(
        &object,
        &format!("Pods metric {}", want.pods_metric.name),
        format!("AverageValue {}", want.pods_metric.average_value),
        pods_target.map_or_else(|| "absent".to_owned(), |(k, v)| format!("{k} {}", shown(v))),
        pods_ok,
    );
    r.equal(&object, "metric count", 3, metrics.len());
    let behavior = spec.behavior.as_ref();
    r.equal(
        &object,
        "behavior.scaleUp",
        fixture_rules(&want.scale_up),
        spec_rules(behavior.and_then(|b| b.scale_up.as_ref())),
    );
    r.equal(
        &object,
        "behavior.scaleDown",
        fixture_rules(&want.scale_down),
        spec_rules(behavior.and_then(|b| b.scale_down.as_ref())),
    );
}

pub(crate) fn pdb(cx: &Context, r: &mut Recorder) {
    let want = &cx.governance_fixture.pdb;
    let object = cx.governance_label("PodDisruptionBudget", &want.name);
    let Some(pdb) = cx.pdb() else {
        return r.missing(&object, "object");
    };
    r.equal(&object, "metadata.name", want.name.clone(), shown(pdb.metadata.name.clone()));
    namespace(cx, r, &object, pdb.metadata.namespace.as_ref());
    let spec = pdb.spec.as_ref();
    r.equal(
        &object,
        "minAvailable",
        want.min_available.to_string(),
        shown(spec.and_then(|s| s.min_available.as_ref()).map(int_or_string)),
    );
    r.equal(
        &object,
        "maxUnavailable",
        "absent".to_owned(),
        shown(spec.and_then(|s| s.max_unavailable.as_ref()).map(int_or_string)),
    );
}

pub(crate) fn resource_quota(cx: &Context, r: &mut Recorder) {
    let want = &cx.governance_fixture.resource_quota;
    let object = cx.governance_label("ResourceQuota", &want.name);
    let Some(quota) = cx.quota() else {
        return r.missing(&object, "object");
    };
    r.equal(&object, "metadata.name", want.name.clone(), shown(quota.metadata.name.clone()));
    namespace(cx, r, &object, quota.metadata.namespace.as_ref());
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    compare_quantities(r, &object, "hard", &want.hard, hard);
}

pub(crate) fn limit_range(cx: &Context, r: &mut Recorder) {
    let want = &cx.governance_fixture.limit_range;
    let object = cx.governance_label("LimitRange", &want.name);
    let Some(range) = cx.limit_range() else {
        return r.missing(&object, "object");
    };
    r.equal(&object, "metadata.name", want.name.clone(), shown(range.metadata.name.clone()));
    namespace(cx, r, &object, range.metadata.namespace.as_ref());
    let Some(item) = range.spec.as_ref().and_then(|s| s.limits.iter().find(|l| l.type_ == "Container")) else {
        return r.missing(&object, "limits[type=Container]");
    };
    let c = &want.container;
    compare_quantities(r, &object, "default", &c.default, item.default.as_ref());
    compare_quantities(r, &object, "defaultRequest", &c.default_request, item.default_request.as_ref());
    compare_quantities(r, &object, "min", &c.min, item.min.as_ref());
    compare_quantities(r, &object, "max", &c.max, item.max.as_ref());
}
