//! `live-pod-security-enforced`: the namespace's Pod Security admission
//! refuses what the restricted standard forbids, and admits what it allows.
//! The pods are a running app pod's own spec (so each differs from an
//! admitted pod by one violation only), created as a server-side dry run:
//! admission runs in full and nothing is stored. A namespace that only
//! warns or audits admits them, and fails.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::app_pods::{app_pods, is_ready};
use crate::context::LiveContext;
use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;

/// A violation: what it breaks, and how, on the pod's JSON.
type Violation = (&'static str, fn(&mut Value));

/// Each violation of the restricted standard.
const VIOLATIONS: [Violation; 3] = [
    ("runs as root (runAsUser 0, runAsNonRoot false)", |pod| {
        let root = |context: &mut Value| {
            context["runAsUser"] = json!(0);
            context["runAsNonRoot"] = json!(false);
        };
        root(pod_context(pod));
        container_contexts(pod).into_iter().for_each(root);
    }),
    ("allows privilege escalation", |pod| {
        for context in container_contexts(pod) {
            context["allowPrivilegeEscalation"] = json!(true);
        }
    }),
    ("has no seccomp profile", |pod| {
        let unconfined = |context: &mut Value| {
            if let Some(map) = context.as_object_mut() {
                map.remove("seccompProfile");
            }
        };
        unconfined(pod_context(pod));
        container_contexts(pod).into_iter().for_each(unconfined);
    }),
];

/// The pod's security context (made if absent).
fn pod_context(pod: &mut Value) -> &mut Value {
    let spec = &mut pod["spec"];
    if spec.get("securityContext").is_none() {
        spec["securityContext"] = json!({});
    }
    &mut spec["securityContext"]
}

/// Each container's security context (made if absent). The pod's and the
/// containers' are taken in two steps: one borrow at a time.
fn container_contexts(pod: &mut Value) -> Vec<&mut Value> {
    let Some(containers) = pod["spec"]["containers"].as_array_mut() else { return Vec::new() };
    containers
        .iter_mut()
        .map(|container| {
            if container.get("securityContext").is_none() {
                container["securityContext"] = json!({});
            }
            &mut container["securityContext"]
        })
        .collect()
}

/// A pod to create from a running one: its spec without what belongs to
/// that pod (node, ephemeral containers), under a new name and no labels
/// (so no controller counts it).
fn candidate(running: &Pod, name: &str) -> Result<Value, serde_json::Error> {
    let mut spec = serde_json::to_value(running.spec.clone().unwrap_or_default())?;
    if let Some(map) = spec.as_object_mut() {
        for owned in ["nodeName", "ephemeralContainers"] {
            map.remove(owned);
        }
    }
    let metadata = ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() };
    Ok(json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}))
}

/// Whether a refusal is Pod Security admission's for the restricted level.
fn refused_by_pod_security(code: u16, message: &str) -> bool {
    code == 403 && message.contains("violates PodSecurity \"restricted")
}

async fn dry_run(pods: &Api<Pod>, pod: &Value) -> Result<(), kube::Error> {
    let pod: Pod = serde_json::from_value(pod.clone()).map_err(kube::Error::SerdeError)?;
    let params = PostParams { dry_run: true, field_manager: None };
    pods.create(&params, &pod).await.map(drop)
}

pub(crate) async fn pod_security_enforced(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("Namespace {}", cx.namespace());
    let running = match app_pods(cx).await {
        Ok(pods) => pods.into_iter().find(is_ready),
        Err(e) => return r.record(&object, "an app pod to copy", "a Ready pod", chain(&e), false),
    };
    let Some(running) = running else { return r.record(&object, "an app pod to copy", "a Ready pod", "none", false) };
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let compliant = match candidate(&running, "cbam-conformance-pss-compliant") {
        Ok(pod) => pod,
        Err(e) => return r.record(&object, "an app pod to copy", "its spec", e, false),
    };
    let admitted = dry_run(&pods, &compliant).await;
    r.record(
        &object,
        "a copy of a running app pod (server-side dry run)",
        "admitted",
        admitted.as_ref().map_or_else(|e| format!("refused: {}", chain(e)), |()| "admitted".to_owned()),
        admitted.is_ok(),
    );
    for (n, (violation, apply)) in VIOLATIONS.iter().enumerate() {
        let mut pod = compliant.clone();
        pod["metadata"]["name"] = json!(format!("cbam-conformance-pss-violation-{n}"));
        apply(&mut pod);
        let subject = format!("a copy that {violation} (server-side dry run)");
        let expected = "refused (403) by Pod Security admission, level restricted";
        match dry_run(&pods, &pod).await {
            Ok(()) => r.record(&object, &subject, expected, "admitted", false),
            Err(kube::Error::Api(status)) => {
                let passed = refused_by_pod_security(status.code, &status.message);
                r.record(&object, &subject, expected, format!("{}: {}", status.code, status.message), passed);
            }
            Err(e) => r.record(&object, &subject, expected, chain(&e), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false}}, {"name": "b"}]}})
    }

    #[test]
    fn each_violation_changes_every_security_context() {
        let mut root = pod();
        (VIOLATIONS[0].1)(&mut root);
        assert_eq!(root["spec"]["securityContext"]["runAsUser"], 0);
        assert_eq!(root["spec"]["containers"][1]["securityContext"]["runAsNonRoot"], false);
        let mut escalation = pod();
        (VIOLATIONS[1].1)(&mut escalation);
        assert_eq!(escalation["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"], true);
        assert!(escalation["spec"]["securityContext"].get("allowPrivilegeEscalation").is_none());
        let mut seccomp = pod();
        (VIOLATIONS[2].1)(&mut seccomp);
        assert!(seccomp["spec"]["securityContext"].get("seccompProfile").is_none());
    }

    #[test]
    fn only_pod_security_refusing_counts() {
        let by_pss = "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true";
        assert!(refused_by_pod_security(403, by_pss));
        assert!(!refused_by_pod_security(403, "exceeded quota: cbam-quota"));
        assert!(!refused_by_pod_security(422, by_pss));
    }
}
