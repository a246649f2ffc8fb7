//! A harness tool run beside the app's process: an ephemeral container of
//! the cluster's tool image that targets the app container (so it shares
//! its PID namespace and sees the app as PID 1), with a security context of
//! its own, set in full: the restricted profile and the documented
//! identity, never inherited from the pod. A pod whose identity changed
//! therefore cannot stop the tool from starting; and a tool the kubelet
//! cannot start (its image, its settings) is reported at once as
//! `ToolError::CannotRun`, so the check it serves says "not verified"
//! naming the tool, never fails what it was to observe.

use std::time::Duration;

use cbam_cluster::wait::{Poll, WaitError, until};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kube::api::{Api, LogParams, Patch, PatchParams};
use serde_json::json;

use crate::context::LiveContext;
use crate::judges::container_start::{ToolFailure, reading};
use cbam_error_chain::render as chain;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    #[error("add the tool container {container} to pod {pod}")]
    Add {
        pod: String,
        container: String,
        #[source]
        source: kube::Error,
    },
    #[error("the tool container {container} of image {image} in pod {pod} cannot run ({said})")]
    CannotRun {
        pod: String,
        container: String,
        image: String,
        /// Its last words, if any (a permission it lacks, a missing file).
        said: String,
        #[source]
        failure: ToolFailure,
    },
    #[error("the tool container {container} in pod {pod}")]
    Wait {
        pod: String,
        container: String,
        #[source]
        source: WaitError,
    },
    #[error("read the log of the tool container {container} in pod {pod}")]
    Log {
        pod: String,
        container: String,
        #[source]
        source: kube::Error,
    },
}

/// The tool container's own security context: what the restricted Pod
/// Security Standard admits, as the documented user and group.
pub(crate) fn security_context(cx: &LiveContext<'_>) -> serde_json::Value {
    let s = &cx.workload.security;
    json!({
        "allowPrivilegeEscalation": false,
        "runAsNonRoot": true,
        "runAsUser": s.run_as_user,
        "runAsGroup": s.run_as_group,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// Adds the ephemeral container NAME running COMMAND to POD, targeting the
/// app container.
pub(crate) async fn add(cx: &LiveContext<'_>, pod: &str, name: &str, command: &[&str]) -> Result<(), ToolError> {
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let patch = json!({"spec": {"ephemeralContainers": [{
        "name": name,
        "image": cx.tool_image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "targetContainerName": cx.workload.container,
        "securityContext": security_context(cx),
    }]}});
    pods.patch_ephemeral_containers(pod, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(drop)
        .map_err(|source| ToolError::Add { pod: pod.to_owned(), container: name.to_owned(), source })
}

/// The state of the ephemeral container NAME of POD.
fn state(pod: &Pod, name: &str) -> Option<ContainerState> {
    pod.status
        .as_ref()?
        .ephemeral_container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.state.clone())
}

/// Whether the tool container NAME of POD cannot start or failed, as far as
/// the pod's status says now (None: running, done, or unreadable).
pub(crate) async fn failure(pods: &Api<Pod>, pod: &str, name: &str) -> Option<ToolFailure> {
    let p = pods.get(pod).await.ok()?;
    reading(state(&p, name).as_ref()).err()
}

/// Runs COMMAND as the tool container NAME in POD and returns what it
/// printed, once it exited 0 within TIMEOUT.
pub(crate) async fn run(
    cx: &LiveContext<'_>,
    pod: &str,
    name: &str,
    command: &[&str],
    timeout: Duration,
) -> Result<String, ToolError> {
    add(cx, pod, name, command).await?;
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let ended = until(&format!("tool container {name} in pod {pod} to finish"), timeout, || async {
        match pods.get(pod).await {
            Ok(p) => match reading(state(&p, name).as_ref()) {
                Ok(true) => Poll::Done(Ok(())),
                Ok(false) => Poll::Pending(format!("{:?}", state(&p, name))),
                Err(reason) => Poll::Done(Err(reason)),
            },
            Err(e) => Poll::failed(chain(&e), &e),
        }
    })
    .await
    .map_err(|source| ToolError::Wait { pod: pod.to_owned(), container: name.to_owned(), source })?;
    if let Err(failure) = ended {
        let said = pods
            .logs(pod, &LogParams { container: Some(name.to_owned()), tail_lines: Some(3), ..LogParams::default() })
            .await
            .unwrap_or_default();
        let said =
            if said.trim().is_empty() { "it said nothing".to_owned() } else { format!("it said: {}", said.trim()) };
        return Err(ToolError::CannotRun {
            pod: pod.to_owned(),
            container: name.to_owned(),
            image: cx.tool_image.clone(),
            said,
            failure,
        });
    }
    pods.logs(pod, &LogParams { container: Some(name.to_owned()), ..LogParams::default() })
        .await
        .map_err(|source| ToolError::Log { pod: pod.to_owned(), container: name.to_owned(), source })
}
