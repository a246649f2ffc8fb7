//! The API server enforces the governance exactly at the documented bounds:
//! a container at the LimitRange maximum is admitted and one millicore over
//! it rejected; a pod requesting exactly the quota's remaining CPU is
//! admitted and one millicore more rejected (server-side dry run, so nothing
//! is created). A bound looser or tighter than documented fails.

use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::context::LiveContext;
use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;
use cbam_model::quantity::Quantity;

/// A pod that passes the "restricted" Pod Security Standard, so only the
/// resource rules can reject it; of the harness's tool image (IMAGE), the
/// one image the user supplied for the harness (an admission policy that
/// allows only known registries has no other reason to refuse it). Never
/// created (a server-side dry run), never pulled.
/// One container per CPU amount (millicores, requests = limits).
fn pod(name: &str, image: &str, cpu_millis: &[u64]) -> Result<Pod, serde_json::Error> {
    let container = |(i, cpu): (usize, &u64)| {
        json!({
            "name": format!("c{i}"), "image": image, "imagePullPolicy": "Never",
            "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": "16Mi"}, "limits": {"cpu": format!("{cpu}m"), "memory": "16Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 65535,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
        })
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": cpu_millis.iter().enumerate().map(container).collect::<Vec<_>>()}
    }))
}

/// `total` millicores in containers of at least `min` and at most `max`
/// each (a remainder below `min` borrows from the container before it).
fn split(total: u64, min: u64, max: u64) -> Vec<u64> {
    let max = max.max(1);
    let mut parts = vec![max; usize::try_from(total / max).unwrap_or(0)];
    let rest = total % max;
    if rest > 0 {
        match parts.last_mut() {
            Some(last) if rest < min => {
                *last -= min - rest;
                parts.push(min);
            }
            _ => parts.push(rest),
        }
    }
    parts
}

#[derive(Debug, thiserror::Error)]
enum AdmissionError {
    /// The API server's answer: what the probe is judged by.
    #[error("admit the pod: rejected ({code}): {message}")]
    Rejected { code: u16, message: String },
    #[error("submit the pod")]
    Submit(#[source] kube::Error),
    #[error("read ResourceQuota {0}")]
    Quota(String, #[source] kube::Error),
}

async fn dry_run(cx: &LiveContext<'_>, pod: &Pod) -> Result<(), AdmissionError> {
    let api: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let params = PostParams { dry_run: true, ..PostParams::default() };
    match api.create(&params, pod).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(AdmissionError::Rejected { code: status.code, message: status.message }),
        Err(e) => Err(AdmissionError::Submit(e)),
    }
}

fn scaled_millis(value: &str, factor: u32) -> u64 {
    let cores = Quantity::parse(value).map_or(0.0, |q| q.0);
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small positive CPU amounts")]
    let millis = (cores * 1000.0 / f64::from(factor)).ceil() as u64;
    millis
}

/// What the API server must do with a probe pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Admitted,
    /// Rejected with 403 and a message containing this.
    Rejected(&'static str),
}

/// Submits a probe pod (dry run) and records whether the API server did
/// what `want` says.
async fn probe(
    cx: &LiveContext<'_>,
    r: &mut Recorder,
    object: &str,
    pod_name: &str,
    cpu: &[u64],
    subject: String,
    want: Want,
) {
    let pod = match pod(pod_name, &cx.tool_image, cpu) {
        Ok(p) => p,
        Err(e) => return r.record(object, "probe pod", "built", e.to_string(), false),
    };
    let result = dry_run(cx, &pod).await;
    let text = match &result {
        Ok(()) => "admitted".to_owned(),
        Err(AdmissionError::Rejected { code, message }) => format!("rejected ({code}): {message}"),
        Err(e) => chain(e),
    };
    let (expected, ok) = match want {
        Want::Admitted => ("admitted".to_owned(), result.is_ok()),
        Want::Rejected(reason) => {
            let refused =
                matches!(&result, Err(AdmissionError::Rejected { code: 403, message }) if message.contains(reason));
            (format!("rejected: {reason}"), refused)
        }
    };
    r.record(object, &subject, expected, text, ok);
}

pub(crate) async fn limit_range_enforced(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("LimitRange {}/{}", cx.namespace(), cx.governance.limit_range.name);
    let max = cx.governance.limit_range.container.max.get("cpu").map_or(0, |v| scaled_millis(v, cx.factor));
    let at = format!("a container with cpu {max}m (the maximum)");
    probe(cx, r, &object, "conformance-at-limit-range", &[max], at, Want::Admitted).await;
    let over = format!("a container with cpu {}m (1m over the maximum {max}m)", max + 1);
    probe(cx, r, &object, "conformance-over-limit-range", &[max + 1], over, Want::Rejected("maximum cpu usage")).await;
}

/// CPU the quota has already counted (its status) under `key`.
async fn quota_used(cx: &LiveContext<'_>, key: &str) -> Result<u64, AdmissionError> {
    let api: Api<ResourceQuota> = Api::namespaced(cx.client.clone(), cx.namespace());
    let name = &cx.governance.resource_quota.name;
    let quota = api.get(name).await.map_err(|e| AdmissionError::Quota(name.clone(), e))?;
    let used = quota.status.and_then(|s| s.used).and_then(|u| u.get(key).map(|q| q.0.clone()));
    Ok(used.map_or(0, |v| scaled_millis(&v, 1)))
}

pub(crate) async fn quota_enforced(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("ResourceQuota {}/{}", cx.namespace(), cx.governance.resource_quota.name);
    let max = cx.governance.limit_range.container.max.get("cpu").map_or(1, |v| scaled_millis(v, cx.factor)).max(1);
    let min = cx.governance.limit_range.container.min.get("cpu").map_or(0, |v| scaled_millis(v, cx.factor));
    // The probe's containers request what they limit: what is left is the
    // smaller of the documented requests.cpu and limits.cpu rests.
    let mut left: Vec<(String, u64, u64, u64)> = Vec::new();
    for key in ["requests.cpu", "limits.cpu"] {
        let Some(hard) = cx.governance.resource_quota.hard.get(key).map(|v| scaled_millis(v, cx.factor)) else {
            continue;
        };
        let used = match quota_used(cx, key).await {
            Ok(u) => u,
            Err(e) => {
                return r.record(&object, &format!("{key} used"), "read from the quota's status", chain(&e), false);
            }
        };
        left.push((key.to_owned(), hard, used, hard.saturating_sub(used)));
    }
    let Some((key, hard, used, remaining)) = left.into_iter().min_by_key(|(_, _, _, rest)| *rest) else {
        return r.record(&object, "cpu", "a documented requests.cpu or limits.cpu", "none", false);
    };
    if remaining == 0 {
        return r.record(&object, &key, format!("{hard}m documented, some left"), format!("{used}m used"), false);
    }
    // Containers each within the LimitRange, together exactly the rest of the quota, then 1m more.
    let at = format!("a pod with {remaining}m cpu, what {key} leaves ({hard}m documented, {used}m used)");
    probe(cx, r, &object, "conformance-at-quota", &split(remaining, min, max), at, Want::Admitted).await;
    let over = format!("a pod with {}m cpu (1m over what {key} leaves)", remaining + 1);
    let want = Want::Rejected("exceeded quota");
    probe(cx, r, &object, "conformance-over-quota", &split(remaining + 1, min, max), over, want).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_total_into_containers_within_the_maximum() {
        assert_eq!(split(1811, 7, 250), [250, 250, 250, 250, 250, 250, 250, 61]);
        assert_eq!(split(500, 7, 250), [250, 250]);
        assert_eq!(split(503, 7, 250), [250, 246, 7]);
        assert_eq!(split(1, 0, 250), [1]);
    }
}
