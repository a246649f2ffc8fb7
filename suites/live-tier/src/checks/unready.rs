//! A pod made unready leaves the Service's endpoints, and comes back once
//! Ready again. The pod is made unready the way a process is: an ephemeral
//! container (the cluster's tool image, in the app's PID namespace, as the
//! documented user: actions/tool_container.rs) sends SIGTERM to the app, which
//! answers `/health/ready` with 503 while it drains and then exits; the
//! kubelet restarts it in the same pod.
//! The pod is never deleted, so only its readiness can move its endpoint.

use cbam_cluster::wait::{Poll, until};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};

use crate::actions::tool_container;
use crate::app_pods::{app_pods, is_ready};
use crate::context::LiveContext;
use crate::traffic::prober_pod::PROBER;
use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;

#[derive(Debug, thiserror::Error)]
enum UnreadyError {
    #[error("list the EndpointSlices of Service {0}")]
    Slices(String, #[source] kube::Error),
}

/// The pod's endpoint in the Service's EndpointSlices: Some(ready) or None
/// when it is not listed at all.
async fn endpoint_ready(cx: &LiveContext<'_>, pod: &str) -> Result<Option<bool>, UnreadyError> {
    let api: Api<EndpointSlice> = Api::namespaced(cx.client.clone(), cx.namespace());
    let service = &cx.workload.service.name;
    let selector = format!("kubernetes.io/service-name={service}");
    let slices = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| UnreadyError::Slices(service.clone(), e))?;
    Ok(slices
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)))
}

fn shown(state: Option<bool>) -> &'static str {
    match state {
        Some(true) => "listed ready",
        Some(false) => "listed not ready",
        None => "not listed",
    }
}

/// The ephemeral container that sends SIGTERM; its failure (it cannot
/// start, or may not signal the app: a root process) makes the check "not
/// verified", not failed.
const SIGTERM_TOOL: &str = "cbam-conformance-sigterm";

pub(crate) async fn unready_leaves_endpoints(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("Service {}/{}", cx.namespace(), cx.workload.service.name);
    let pods = match app_pods(cx).await {
        Ok(p) => p,
        Err(e) => return r.record(&object, "endpoints", "a Ready pod", chain(&e), false),
    };
    let Some(pod) = pods.iter().find(|p| is_ready(p)) else {
        return r.record(&object, "endpoints", "a Ready pod", "none", false);
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone();
    let before = endpoint_ready(cx, &name).await;
    r.record(
        &object,
        &format!("endpoint of Ready pod {name}"),
        "listed ready",
        before.as_ref().map_or_else(|e| chain(e), |s| shown(*s).to_owned()),
        matches!(before, Ok(Some(true))),
    );
    if !matches!(before, Ok(Some(true))) {
        return;
    }
    cx.restarts.on_purpose(&name);
    if let Err(e) = tool_container::add(cx, &name, SIGTERM_TOOL, &[PROBER, "signal", "term"]).await {
        return r.skip(&object, "make a pod unready", "SIGTERM delivered", chain(&e));
    }
    let t = cx.timeouts.rollout;
    let pods_api: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let left = until(&format!("pod {name}'s endpoint not ready"), t, || async {
        match endpoint_ready(cx, &name).await {
            Ok(Some(true)) => match tool_container::failure(&pods_api, &name, SIGTERM_TOOL).await {
                Some(reason) => Poll::Done(Err(reason)),
                None => Poll::Pending("still listed ready".into()),
            },
            Ok(state) => Poll::Done(Ok(shown(state))),
            Err(e) => Poll::failed(chain(&e), &e),
        }
    })
    .await;
    match left {
        Ok(Ok(state)) => r.record(&object, &format!("endpoint of unready pod {name}"), "not listed ready", state, true),
        Ok(Err(reason)) => {
            return r.skip(
                &object,
                &format!("endpoint of unready pod {name}"),
                "not listed ready",
                format!(
                    "the tool container {SIGTERM_TOOL} of image {} could not make it unready: {reason}",
                    cx.tool_image
                ),
            );
        }
        Err(e) => {
            return r.record(&object, &format!("endpoint of unready pod {name}"), "not listed ready", e, false);
        }
    }
    // Back: the same pod (not a replacement) Ready and listed again.
    let back = until(&format!("pod {name} Ready and listed again"), t, || async {
        let same = match pods_api.get_opt(&name).await {
            Ok(Some(p)) if p.metadata.uid == uid => p,
            Ok(_) => return Poll::Done(Err("the pod was replaced, not restarted".to_owned())),
            Err(e) => return Poll::failed(e.to_string(), &e),
        };
        match endpoint_ready(cx, &name).await {
            Ok(Some(true)) if is_ready(&same) => Poll::Done(Ok("listed ready")),
            Ok(state) => Poll::Pending(format!("pod Ready {}, endpoint {}", is_ready(&same), shown(state))),
            Err(e) => Poll::failed(chain(&e), &e),
        }
    })
    .await;
    let (found, ok) = match back {
        Ok(Ok(s)) => (s.to_owned(), true),
        Ok(Err(e)) => (e, false),
        Err(e) => (e.to_string(), false),
    };
    r.record(&object, &format!("endpoint of pod {name} once Ready again"), "listed ready", found, ok);
}
