//! The in-cluster half of the zero-downtime load: a tool pod (the cluster's
//! busybox image, restricted like the app) in the environment's namespace,
//! the static `cbam-prober` streamed into it over an exec session, then run
//! against the Service's ClusterIP. Its records come back on the exec's
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

pub(crate) const POD: &str = "cbam-conformance-prober";
const DIR: &str = "/probe";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProberPodError {
    #[error("read the prober binary {0}")]
    Binary(String, #[source] std::io::Error),
    #[error("read Service {0}'s ClusterIP")]
    Service(String, #[source] kube::Error),
    #[error("Service {0} has no ClusterIP")]
    NoClusterIp(String),
    #[error("create the tool pod {POD}")]
    Create(#[source] kube::Error),
    #[error(transparent)]
    Running(#[from] WaitError),
    #[error("open an exec session in {POD} to {0}")]
    Exec(&'static str, #[source] kube::Error),
    #[error("copy the prober into {POD}")]
    Copy(#[source] std::io::Error),
    #[error("copy the prober into {POD}: {0}")]
    CopyFailed(String),
    #[error("the prober in {POD} printed no start line: {0}")]
    NotStarted(String),
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
                "command": ["/bin/busybox", "sleep", "86400"],
                "resources": {"requests": {"cpu": cpu(100), "memory": "32Mi"},
                              "limits": {"cpu": cpu(1000), "memory": "64Mi", "ephemeral-storage": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "probe", "mountPath": DIR}]
            }],
            "volumes": [{"name": "probe", "emptyDir": {"sizeLimit": "32Mi"}}]
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

/// Creates the tool pod (once per environment) and waits until it runs.
async fn ensure_pod(cx: &LiveContext<'_>, pods: &Api<Pod>, placement: Placement) -> Result<(), ProberPodError> {
    if pods.get_opt(POD).await.ok().flatten().is_none() {
        pods.create(&PostParams::default(), &pod_spec(cx, placement)).await.map_err(ProberPodError::Create)?;
    }
    until(&format!("tool pod {POD} running"), cx.timeouts.rollout, || async {
        match pods.get(POD).await {
            Ok(p) => {
                let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                let waiting = p
                    .status
                    .and_then(|s| s.container_statuses)
                    .and_then(|c| c.first().and_then(|c| c.state.clone()))
                    .and_then(|s| s.waiting)
                    .map(|w| format!(" ({} {})", w.reason.unwrap_or_default(), w.message.unwrap_or_default()));
                if phase == "Running" {
                    Poll::Done(())
                } else {
                    Poll::Pending(format!("phase {phase}{}", waiting.unwrap_or_default()))
                }
            }
            Err(e) => Poll::failed(e.to_string(), &e),
        }
    })
    .await?;
    Ok(())
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

/// Streams the binary into the pod (`cat` from the exec's stdin).
async fn copy_binary(cx: &LiveContext<'_>, pods: &Api<Pod>) -> Result<(), ProberPodError> {
    let binary =
        tokio::fs::read(cx.prober).await.map_err(|e| ProberPodError::Binary(cx.prober.display().to_string(), e))?;
    let script = format!("cat > {DIR}/cbam-prober && chmod 755 {DIR}/cbam-prober && echo copied");
    let params = AttachParams {
        stdin: true,
        stdout: true,
        stderr: true,
        max_stdin_buf_size: Some(64 * 1024),
        ..Default::default()
    };
    let mut process = pods
        .exec(POD, ["/bin/busybox", "sh", "-c", &script], &params)
        .await
        .map_err(|e| ProberPodError::Exec("copy the prober", e))?;
    let (stdout, stderr) = (read_all(process.stdout()), read_all(process.stderr()));
    if let Some(mut stdin) = process.stdin() {
        stdin.write_all(&binary).await.map_err(ProberPodError::Copy)?;
        stdin.shutdown().await.map_err(ProberPodError::Copy)?;
    }
    let said = tokio::time::timeout(cx.timeouts.rollout, async {
        let (out, err) = (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default());
        format!("{}{}", out.trim(), err.trim())
    })
    .await
    .unwrap_or_default();
    let _ = process.join().await;
    if said.contains("copied") { Ok(()) } else { Err(ProberPodError::CopyFailed(said)) }
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
    copy_binary(cx, &pods).await?;
    let load = &cx.disruption.load;
    let addr = format!("{ip}:{}", cx.workload.service.port);
    let host = format!("{}.{}.svc", cx.workload.service.name, cx.namespace());
    let (rate, seconds, timeout) = (rate.to_string(), bound.as_secs_f64().to_string(), load.timeout_ms.to_string());
    let (run_rate, run_seconds) = (run_rate.to_string(), load.runs.duration_seconds.to_string());
    let command = [
        "/probe/cbam-prober",
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
