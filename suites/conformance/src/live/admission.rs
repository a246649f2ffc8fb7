//! The API server enforces the governance: a pod over the LimitRange maximum
//! and a pod over the remaining quota are rejected (server-side dry run, so
//! nothing is created).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::live::context::LiveContext;
use crate::outcome::Recorder;
use crate::quantity::Quantity;

/// A pod that passes the "restricted" Pod Security Standard, so only the
/// resource rules can reject it.
fn pod(name: &str, containers: usize, cpu_millis: u64) -> Result<Pod, serde_json::Error> {
    let container = |i: usize| {
        json!({
            "name": format!("c{i}"), "image": "registry.k8s.io/pause:3.10.1", "imagePullPolicy": "Never",
            "resources": {"requests": {"cpu": format!("{cpu_millis}m"), "memory": "16Mi"}, "limits": {"cpu": format!("{cpu_millis}m"), "memory": "16Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 65535,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
        })
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": (0..containers).map(container).collect::<Vec<_>>()}
    }))
}

async fn dry_run(cx: &LiveContext<'_>, pod: &Pod) -> Result<(), (u16, String)> {
    let api: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let params = PostParams { dry_run: true, ..PostParams::default() };
    match api.create(&params, pod).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err((status.code, status.message)),
        Err(e) => Err((0, e.to_string())),
    }
}

fn scaled_millis(value: &str, factor: u32) -> u64 {
    let cores = Quantity::parse(value).map_or(0.0, |q| q.0);
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small positive CPU amounts")]
    let millis = (cores * 1000.0 / f64::from(factor)).ceil() as u64;
    millis
}

/// Submits a probe pod (dry run) and records whether the API server
/// rejected it with 403 and a message containing `reason`.
async fn expect_rejection(
    cx: &LiveContext<'_>,
    r: &mut Recorder,
    object: &str,
    probe: (&str, usize, u64),
    subject: String,
    reason: &str,
) {
    let (name, containers, cpu_millis) = probe;
    let pod = match pod(name, containers, cpu_millis) {
        Ok(p) => p,
        Err(e) => return r.record(object, "probe pod", "built", e.to_string(), false),
    };
    let result = dry_run(cx, &pod).await;
    let text = match &result {
        Ok(()) => "admitted".to_owned(),
        Err((code, message)) => format!("rejected ({code}): {message}"),
    };
    let ok = matches!(&result, Err((403, m)) if m.contains(reason));
    r.record(object, &subject, format!("rejected: {reason}"), text, ok);
}

pub(crate) async fn limit_range_enforced(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("LimitRange {}/{}", cx.namespace(), cx.governance.limit_range.name);
    let max = cx.governance.limit_range.container.max.get("cpu").map_or(0, |v| scaled_millis(v, cx.factor));
    let subject = format!("a container with cpu {}m (max {max}m)", max * 2);
    expect_rejection(cx, r, &object, ("conformance-over-limit-range", 1, max * 2), subject, "maximum cpu usage").await;
}

pub(crate) async fn quota_enforced(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("ResourceQuota {}/{}", cx.namespace(), cx.governance.resource_quota.name);
    let hard = cx.governance.resource_quota.hard.get("requests.cpu").map_or(0, |v| scaled_millis(v, cx.factor));
    let max = cx.governance.limit_range.container.max.get("cpu").map_or(1, |v| scaled_millis(v, cx.factor)).max(1);
    // Containers each within the LimitRange, together beyond the whole quota.
    let count = usize::try_from(hard / max + 2).unwrap_or(2);
    let subject = format!("a pod requesting {}m cpu (quota {hard}m)", max * count as u64);
    expect_rejection(cx, r, &object, ("conformance-over-quota", count, max), subject, "exceeded quota").await;
}
