//! The in-cluster half of the zero-downtime load: a tool pod (the harness's
//! tool image, restricted like the app) in the environment's namespace,
//! idling until the static `cbam-prober` it holds is run over an exec
//! session against the Service's ClusterIP. Its records come back on the exec's
//! stdout as they complete; closing its stdin stops it. Works on any cluster
//! the harness reaches (no registry, no port-forward); the pod goes with the
//! namespace at the latest.

use std::time::{Duration, Instant};

use cbam_cluster::wait::{Poll, WaitError, until};
use cbam_prober::{Record, Usage};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

use crate::context::LiveContext;
use crate::judges::container_start;

pub(crate) const POD: &str = "cbam-conformance-prober";
/// The prober in the tool image (its entrypoint).
pub(crate) const PROBER: &str = "/cbam-prober";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProberPodError {
    #[error("read Service {0}'s ClusterIP")]
    Service(String, #[source] kube::Error),
    #[error("Service {0} has no ClusterIP")]
    NoClusterIp(String),
    #[error("create the tool pod {POD}")]
    Create(#[source] kube::Error),
    #[error("start the tool pod {POD} of image {image}")]
    Running {
        image: String,
        #[source]
        source: WaitError,
    },
    #[error("open an exec session in {POD} to {0}")]
    Exec(&'static str, #[source] kube::Error),
    #[error("the prober in {POD} printed no start line: {0}")]
    NotStarted(String),
}

impl ProberPodError {
    /// Whether the harness's tool failed (its image, its pod, its exec
    /// session), not the deployment under test: the check it serves is then
    /// "not verified", never failed. A Service without a ClusterIP is the
    /// deployment's.
    pub(crate) fn is_the_tools(&self) -> bool {
        !matches!(self, ProberPodError::Service(..) | ProberPodError::NoClusterIp(_))
    }
}

/// Where the tool pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Wherever the scheduler puts it.
    Anywhere,
    /// On the control-plane node (`cbam.io/role=server` on the kit and on
    /// kind), which an upgrade of the workers leaves in place.
    ControlPlane,
}

/// The node label the kit and kind give their control-plane node.
const CONTROL_PLANE: (&str, &str) = ("cbam.io/role", "server");

/// The prober running in the tool pod.
pub(crate) struct InCluster {
    /// When its start line arrived: its records' times count from here.
    pub(crate) started: Instant,
    stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    reader: JoinHandle<(Vec<Record>, Option<Usage>, String)>,
    stderr: JoinHandle<String>,
    process: kube::api::AttachedProcess,
}

impl std::fmt::Debug for InCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InCluster").field("started", &self.started).finish_non_exhaustive()
    }
}

fn pod_spec(cx: &LiveContext<'_>, placement: Placement) -> Pod {
    // CPU within the production LimitRange (min 100m, max 4000m) divided by
    // the run's fit factor, as the deployment's own values are; memory has
    // no minimum there and the prober needs a few MiB whatever the factor.
    let cpu = |millis: u32| format!("{}m", millis.div_ceil(cx.factor.max(1)));
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "labels": {"app.kubernetes.io/name": POD}},
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "prober",
                "image": cx.tool_image,
                "imagePullPolicy": "IfNotPresent",
                "command": [PROBER, "idle"],
                "resources": {"requests": {"cpu": cpu(100), "memory": "32Mi"},
                              "limits": {"cpu": cpu(1000), "memory": "64Mi", "ephemeral-storage": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}}
            }]
        }
    });
    let mut pod: Pod = serde_json::from_value(manifest).unwrap_or_default();
    if placement == Placement::ControlPlane
        && let Some(spec) = pod.spec.as_mut()
    {
        spec.node_selector = Some([(CONTROL_PLANE.0.to_owned(), CONTROL_PLANE.1.to_owned())].into());
    }
    pod
}

async fn cluster_ip(cx: &LiveContext<'_>) -> Result<String, ProberPodError> {
    let name = cx.workload.service.name.clone();
    let service = Api::<Service>::namespaced(cx.client.clone(), cx.namespace())
        .get(&name)
        .await
        .map_err(|e| ProberPodError::Service(name.clone(), e))?;
    service.spec.and_then(|s| s.cluster_ip).filter(|ip| ip != "None").ok_or(ProberPodError::NoClusterIp(name))
}

/// Whether the tool pod runs; a container the kubelet cannot start (its
/// image cannot be pulled, its settings refused) ends the wait at once.
fn running(pod: &Pod) -> Poll<()> {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
    let state =
        status.and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first()).and_then(|c| c.state.as_ref());
    if phase == "Running" {
        return Poll::Done(());
    }
    match container_start::reading(state) {
        Err(failure) => Poll::Refused(format!("phase {phase}, {failure}")),
        Ok(_) => {
            let waiting = state.and_then(|s| s.waiting.as_ref()).map(|w| {
                format!(" ({} {})", w.reason.clone().unwrap_or_default(), w.message.clone().unwrap_or_default())
            });
            Poll::Pending(format!("phase {phase}{}", waiting.unwrap_or_default()))
        }
    }
}

/// Creates the tool pod (once per environment) and waits until it runs.
async fn ensure_pod(cx: &LiveContext<'_>, pods: &Api<Pod>, placement: Placement) -> Result<(), ProberPodError> {
    if pods.get_opt(POD).await.ok().flatten().is_none() {
        pods.create(&PostParams::default(), &pod_spec(cx, placement)).await.map_err(ProberPodError::Create)?;
    }
    let condition = format!("tool pod {POD} running");
    let running = until(&condition, cx.timeouts.rollout, || async {
        match pods.get(POD).await {
            Ok(p) => running(&p),
            Err(e) => Poll::failed(e.to_string(), &e),
        }
    });
    running.await.map_err(|source| ProberPodError::Running { image: cx.tool_image.clone(), source })
}

/// Everything an exec session's output pipe says, read on its own task (a
/// pipe nobody reads would stall the session once its buffer is full).
fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text).await;
        }
        text
    })
}

/// Starts the prober against the Service at `rate` requests per second,
/// with pipeline runs of the documented length beside at `run_rate` per
/// second; it stops by itself after `bound`.
pub(crate) async fn start(
    cx: &LiveContext<'_>,
    rate: f64,
    run_rate: f64,
    bound: Duration,
    placement: Placement,
) -> Result<InCluster, ProberPodError> {
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let ip = cluster_ip(cx).await?;
    ensure_pod(cx, &pods, placement).await?;
    let load = &cx.disruption.load;
    let addr = format!("{ip}:{}", cx.workload.service.port);
    let host = format!("{}.{}.svc", cx.workload.service.name, cx.namespace());
    let (rate, seconds, timeout) = (rate.to_string(), bound.as_secs_f64().to_string(), load.timeout_ms.to_string());
    let (run_rate, run_seconds) = (run_rate.to_string(), load.runs.duration_seconds.to_string());
    let command = [
        PROBER,
        "probe",
        "--addr",
        &addr,
        "--host",
        &host,
        "--path",
        &load.path,
        "--rate",
        &rate,
        "--seconds",
        &seconds,
        "--timeout-ms",
        &timeout,
        "--run-rate",
        &run_rate,
        "--run-seconds",
        &run_seconds,
    ];
    let params = AttachParams {
        stdin: true,
        stdout: true,
        stderr: true,
        max_stdout_buf_size: Some(256 * 1024),
        ..Default::default()
    };
    let mut process = pods.exec(POD, command, &params).await.map_err(|e| ProberPodError::Exec("run the prober", e))?;
    let stdin = process.stdin().ok_or(ProberPodError::NotStarted("no stdin".into()))?;
    let stdout = process.stdout().ok_or(ProberPodError::NotStarted("no stdout".into()))?;
    let stderr = read_all(process.stderr());
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(cx.timeouts.request * 2, lines.next_line()).await;
    let started = Instant::now();
    match first {
        Ok(Ok(Some(line))) if line.contains("\"started\"") => {}
        other => return Err(ProberPodError::NotStarted(format!("{other:?}"))),
    }
    let reader = tokio::spawn(async move {
        let (mut records, mut usage, mut odd) = (Vec::new(), None, String::new());
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(r) = serde_json::from_str::<Record>(&line) {
                records.push(r);
            } else if let Ok(u) = serde_json::from_str::<Usage>(&line) {
                usage = Some(u);
            } else if odd.len() < 1000 {
                odd.push_str(&line);
            }
        }
        (records, usage, odd)
    });
    Ok(InCluster { started, stdin: Box::new(stdin), reader, stderr, process })
}

impl InCluster {
    /// Stops the prober (its stdin closes), waits for its in-flight requests
    /// (bounded by its request timeout) and returns every record, what it
    /// cost, and what it said on stderr or in lines that were not records.
    pub(crate) async fn stop(mut self, limit: Duration) -> (Vec<Record>, Option<Usage>, String) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        let records = tokio::time::timeout(limit, self.reader).await;
        let stderr = tokio::time::timeout(Duration::from_secs(1), self.stderr).await;
        self.process.abort();
        let (records, usage, odd) = match records {
            Ok(Ok(r)) => r,
            _ => (Vec::new(), None, "the prober's output did not end in time".to_owned()),
        };
        let said = stderr.ok().and_then(Result::ok).unwrap_or_default();
        (records, usage, format!("{}{}", said.trim(), odd.trim()))
    }
}

/// Removes the tool pod (the namespace's deletion would too; this keeps the
/// quota and the app's checks free of it).
pub(crate) async fn remove(cx: &LiveContext<'_>) {
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let _ = pods.delete(POD, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateWaiting};

    use super::*;

    fn pod(phase: &str, waiting: Option<&str>) -> Pod {
        let state = waiting.map(|reason| ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: Some("failed to resolve cbam-conformance.invalid".into()),
            }),
            ..ContainerState::default()
        });
        container_start::pod_in(phase, state)
    }

    #[test]
    fn an_image_that_cannot_be_pulled_ends_the_wait_at_once_naming_the_answer() {
        for reason in ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"] {
            match running(&pod("Pending", Some(reason))) {
                Poll::Refused(said) => assert!(said.contains(reason) && said.contains("cbam-conformance.invalid")),
                other => panic!("{reason}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_pod_on_its_way_is_waited_for_and_a_running_one_is_done() {
        assert!(matches!(running(&pod("Pending", Some("ContainerCreating"))), Poll::Pending(_)));
        assert!(matches!(running(&pod("Pending", None)), Poll::Pending(_)));
        assert!(matches!(running(&pod("Running", None)), Poll::Done(())));
    }

    #[test]
    fn only_the_deployments_own_service_is_its_fault() {
        assert!(!ProberPodError::NoClusterIp("cbam-api".into()).is_the_tools());
        assert!(ProberPodError::NotStarted("no stdout".into()).is_the_tools());
    }
}
