//! The live tier's run: cluster up and gated, the application image loaded,
//! then per environment: fit, apply (server-side, governance first as the
//! summary's commands do), roll out, check, collect diagnostics on failure,
//! delete. The cluster goes down at the end, also after an error or Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cbam_cluster::docker::{self, DockerError};
use cbam_cluster::existing::{ExistingCluster, ExistingError, ExistingOptions};
use cbam_cluster::kit::{self, KitError};
use cbam_cluster::provider::{ClusterError, KitCluster, KitOptions, reuse_name};
use cbam_cluster::readiness;
use cbam_cluster::timeouts::Timeouts;
use cbam_cluster::wait::{Poll, WaitError, until};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, LogParams};
use serde_json::json;

use crate::fixtures::{Environment, Replicas};
use crate::live::apply::{ApplyError, apply};
use crate::live::autoscaling::{self, Profile};
use crate::live::context::LiveContext;
use crate::live::journal::{self, Journal, JournalError, Undo};
use crate::live::rate_bucket::IngressLog;
use crate::live::restarts::{self, RestartLog};
use crate::live::run_ca::{self, RunCaError};
use crate::live::{admission, drain, edge, fit, unready, workload};
use crate::manifest::Object;
use crate::outcome::{Outcome, Recorder, Status};
use crate::quantity::Quantity;
use crate::static_tier::{EnvResult, StaticRun};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("reach a Docker engine (run `just engine`, ci/engine.sh)")]
    NoEngine,
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error("find the kit's node image {0} in Docker (run `just kit`)")]
    NodeImageMissing(String),
    #[error("read the application image {0} (run `just image`, or pass --app-image)")]
    AppImageMissing(PathBuf),
    #[error("bring the cluster up")]
    Cluster(#[source] Box<ClusterError>),
    #[error("pass the readiness gate")]
    Gate(#[source] WaitError),
    #[error("load the application image into the nodes")]
    Image(#[source] DockerError),
    #[error(transparent)]
    Tls(#[from] RunCaError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("read the cluster: {0}")]
    Read(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("undo what an earlier, interrupted run changed on this cluster: {0} (fix that, then `--cleanup-only`)")]
    Leftovers(String),
    #[error(transparent)]
    Existing(#[from] ExistingError),
    #[error(
        "use namespace {0} on the existing cluster: it already exists (the harness only runs in namespaces it creates, and removes them; use a dedicated cluster or delete it)"
    )]
    NamespaceExists(String),
    #[error("finish: interrupted (Ctrl-C or SIGTERM); {0}")]
    Interrupted(String),
}

impl From<ClusterError> for LiveError {
    fn from(e: ClusterError) -> Self {
        LiveError::Cluster(Box::new(e))
    }
}

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub app_image: PathBuf,
    /// None: choose the factor from the node's capacity (`--fit auto`).
    pub fit: Option<u32>,
    pub agents: usize,
    pub report_dir: PathBuf,
    pub profile: Profile,
    /// Where to run: a kit cluster the harness creates, or an existing one.
    pub provider: Provider,
    /// Image with busybox for tool containers; None: the kit's, or
    /// busybox:1.37 pulled by an existing cluster.
    pub tool_image: Option<String>,
    /// Checks not run (`--skip-check`), each reported as not verified.
    pub skip_checks: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Provider {
    /// A kit cluster (1 server + `agents`), created and removed by the run,
    /// or with `reuse` kept warm and attached to by the next run.
    Kit { reuse: bool },
    /// A cluster from a kubeconfig; left as found.
    Existing(ExistingOptions),
}

/// The cluster a run talks to, whoever made it.
pub struct Target<'c> {
    pub client: Client,
    pub http_port: u16,
    pub https_port: u16,
    /// Set when the harness owns the cluster (image loading, node count).
    kit: Option<&'c KitCluster>,
    tool_image: String,
    /// Wait for each namespace to be gone (not when the cluster goes next).
    wait_cleanup: bool,
    /// The ingress controller's image when the run knows which one it
    /// reaches (the port-forwarded pod of an existing cluster).
    controller: Option<String>,
    /// Every change the run makes to the cluster, to undo.
    journal: &'c Journal,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("https_port", &self.https_port)
            .field("kit", &self.kit.map(|k| k.name.clone()))
            .finish_non_exhaustive()
    }
}

impl<'c> Target<'c> {
    pub fn kit(cluster: &'c KitCluster, journal: &'c Journal) -> Self {
        Target {
            client: cluster.client.clone(),
            http_port: cluster.http_port,
            https_port: cluster.https_port,
            kit: Some(cluster),
            tool_image: kit::TOOL_IMAGE.to_owned(),
            wait_cleanup: true,
            controller: None,
            journal,
        }
    }

    fn existing(cluster: &ExistingCluster, journal: &'c Journal) -> Self {
        Target {
            client: cluster.client.clone(),
            http_port: cluster.http_port,
            https_port: cluster.https_port,
            kit: None,
            // Pulled by the cluster itself (the harness reaches no registry).
            tool_image: "docker.io/library/busybox:1.37".to_owned(),
            wait_cleanup: true,
            controller: Some(cluster.ingress_image.clone()),
            journal,
        }
    }
}

#[derive(Debug, Default)]
pub struct LiveRun {
    pub outcomes: Vec<Outcome>,
    /// (phase, seconds)
    pub timings: Vec<(String, f64)>,
    /// Facts the report states (scale factor, versions, TLS issuer note).
    pub notes: Vec<String>,
    /// Markdown sections for the report (autoscaling step tables).
    pub sections: Vec<String>,
    /// What the run could not undo on the cluster (a namespace still
    /// terminating): reported beside the verdict, kept in the journal.
    pub cleanup: Vec<String>,
}

/// Live check ids and what each proves, in run order.
pub const LIVE_CHECKS: &[(&str, &str)] = &[
    ("live-rollout", "the Deployment rolls out to the documented replicas"),
    ("live-inventory", "the documented objects exist (and PVCs are Bound)"),
    ("live-replicas", "documented replicas Ready at rest"),
    ("live-probes", "every pod answers /health, /health/ready and exposes the pipeline metric"),
    ("live-unready-endpoints", "a pod made unready leaves the Service endpoints, and returns once Ready"),
    ("live-tls", "HTTPS with SNI, certificate chained to the run's CA, TLS >= 1.2"),
    ("live-https-redirect", "HTTP is redirected to HTTPS"),
    ("live-security-headers", "the documented security headers on responses"),
    ("live-cors", "CORS per environment policy, preflight included"),
    ("live-api-docs", "API docs reachable only where enabled"),
    ("live-limit-range-enforced", "a container over the LimitRange maximum is rejected"),
    ("live-quota-enforced", "a pod over the ResourceQuota is rejected"),
    ("live-pdb-drain", "a node drain keeps minAvailable; a breaking eviction gets 429"),
    ("live-autoscaling", "under generated load the HPA follows the documented timeline to its maximum"),
    // Last: it spends the client's budget for a minute, which would refuse
    // the requests of any check after it (the autoscaling load included).
    ("live-rate-limit", "the request after 100 in a minute gets 429"),
    // Last: it judges the whole run, after a full liveness window.
    ("live-no-restarts", "no workload container restarts during the run"),
];

fn timed(timings: &mut Vec<(String, f64)>, phase: String, since: Instant) {
    timings.push((phase, since.elapsed().as_secs_f64()));
}

/// Peak pods (max replicas + one surge pod) and per-pod requests, from the fixtures.
fn peak(fixture: &Environment) -> (u32, f64, f64) {
    let pods = match fixture.replicas {
        Replicas::Fixed(n) => n,
        Replicas::Hpa { max, .. } => max,
    };
    let q = |k: &str| fixture.resources.requests.get(k).and_then(|v| Quantity::parse(v).ok()).map_or(0.0, |q| q.0);
    (u32::try_from(pods + 1).unwrap_or(1), q("cpu"), q("memory"))
}

async fn node_capacity(client: &Client) -> Result<(f64, f64), LiveError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.map_err(|e| LiveError::Read(e.to_string()))?;
    let node = list.items.first().ok_or_else(|| LiveError::Read("no node".into()))?;
    let cap = node.status.as_ref().and_then(|s| s.capacity.clone()).unwrap_or_default();
    let get = |k: &str| cap.get(k).and_then(|q| Quantity::parse(&q.0).ok()).map_or(1.0, |q| q.0);
    Ok((get("cpu"), get("memory")))
}

/// The ingress controller's image: the kit's and k3s' Traefik, or
/// ingress-nginx's controller (what `--cluster existing` autodetects).
async fn controller_image(client: &Client) -> String {
    let first_image = |spec: Option<k8s_openapi::api::core::v1::PodSpec>| spec?.containers.first()?.image.clone();
    let daemonset: Api<DaemonSet> = Api::namespaced(client.clone(), "traefik");
    if let Ok(d) = daemonset.get("traefik").await {
        return first_image(d.spec.and_then(|s| s.template.spec)).unwrap_or_else(|| "unknown".into());
    }
    for (namespace, name) in [("kube-system", "traefik"), ("ingress-nginx", "ingress-nginx-controller")] {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        if let Ok(d) = deployments.get(name).await {
            return first_image(d.spec.and_then(|s| s.template.spec)).unwrap_or_else(|| "unknown".into());
        }
    }
    "unknown".into()
}

fn secret(namespace: &str, name: &str, kind: &str, data: serde_json::Value) -> Result<Object, LiveError> {
    let value = json!({"apiVersion": "v1", "kind": "Secret", "type": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "cbam-conformance"}},
        "stringData": data});
    serde_json::from_value::<Secret>(value)
        .map(|s| Object::Secret(Box::new(s)))
        .map_err(|e| LiveError::Read(e.to_string()))
}

async fn rollout(cx: &LiveContext<'_>, r: &mut Recorder) -> bool {
    let want = cx.replicas_at_rest();
    let api: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let name = cx.workload.deployment.clone();
    let result = until(&format!("{}: {want} Ready replicas", cx.deployment_label()), cx.timeouts.rollout, || {
        let (api, name) = (api.clone(), name.clone());
        async move {
            match api.get(&name).await {
                Ok(d) => {
                    let status = d.status.unwrap_or_default();
                    let ready = status.ready_replicas.unwrap_or(0);
                    if ready >= want {
                        Poll::Done(ready)
                    } else {
                        Poll::Pending(format!(
                            "{ready} ready, {} updated, {} unavailable",
                            status.updated_replicas.unwrap_or(0),
                            status.unavailable_replicas.unwrap_or(0)
                        ))
                    }
                }
                Err(e) => Poll::Pending(e.to_string()),
            }
        }
    })
    .await;
    let ok = result.is_ok();
    r.record(
        &cx.deployment_label(),
        "rollout",
        format!("{want} Ready replicas"),
        result.map_or_else(|e| e.to_string(), |n| format!("{n} Ready")),
        ok,
    );
    ok
}

/// Events, pod states and logs of the namespace, for a failed environment.
async fn diagnostics(client: &Client, namespace: &str, dir: &Path) {
    let _ = std::fs::create_dir_all(dir.join("logs"));
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = events.list(&ListParams::default()).await {
        let lines: Vec<String> = list
            .items
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}/{}: {}",
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.involved_object.kind.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                )
            })
            .collect();
        let _ = std::fs::write(dir.join("events.txt"), lines.join("\n"));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = pods.list(&ListParams::default()).await {
        let _ = std::fs::write(dir.join("pods.json"), serde_json::to_string_pretty(&list.items.iter().map(|p| json!({"name": p.metadata.name, "node": p.spec.as_ref().and_then(|s| s.node_name.clone()), "status": p.status})).collect::<Vec<_>>()).unwrap_or_default());
        for pod in &list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if let Ok(log) = pods.logs(&name, &LogParams { tail_lines: Some(200), ..LogParams::default() }).await {
                let _ = std::fs::write(dir.join("logs").join(format!("{name}.log")), log);
            }
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = deployments.list(&ListParams::default()).await {
        let _ =
            std::fs::write(dir.join("deployments.json"), serde_json::to_string_pretty(&list.items).unwrap_or_default());
    }
}

struct Env<'a> {
    result: &'a EnvResult,
    fixture: &'a Environment,
    /// The ingress controller's image, read once per run.
    controller: &'a str,
}

#[expect(clippy::too_many_lines, reason = "one environment's sequence reads best in order")]
async fn environment(
    run: &StaticRun,
    env: Env<'_>,
    cluster: &Target<'_>,
    opts: &LiveOptions,
    t: &Timeouts,
    out: &mut LiveRun,
) -> Result<(), LiveError> {
    let client = &cluster.client;
    if cluster.kit.is_none() {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        match namespaces.get_opt(&env.fixture.namespace).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(LiveError::NamespaceExists(env.fixture.namespace.clone())),
            Err(e) => return Err(LiveError::Read(e.to_string())),
        }
    }
    let fixture = env.fixture;
    let ns = fixture.namespace.clone();
    let since = Instant::now();
    let (node_cpu, node_memory) = node_capacity(client).await?;
    let (pods, pod_cpu, pod_memory) = peak(fixture);
    let factor = opts.fit.unwrap_or_else(|| fit::auto_factor(pods, pod_cpu, pod_memory, node_cpu, node_memory));
    out.notes.push(format!(
        "{}: resources, quota and limit range divided by {factor} to fit {pods} peak pods on nodes of {node_cpu} CPU (the static tier checks the true values)",
        env.result.env
    ));
    let mut objects = env.result.objects.clone();
    let mut governance = if fixture.governance { run.governance.clone() } else { Vec::new() };
    fit::scale(&mut objects, factor);
    fit::scale(&mut governance, factor);
    let tls = run_ca::for_host(&fixture.hostname)?;
    let w = &run.expectations.workload;
    let secret_values: serde_json::Map<String, serde_json::Value> = w
        .secret
        .keys
        .iter()
        .map(|k| (k.clone(), json!(format!("conformance-test-value-for-{}", k.to_lowercase()))))
        .collect();
    let secrets = [
        secret(&ns, &w.secret.name, "Opaque", serde_json::Value::Object(secret_values))?,
        secret(
            &ns,
            &w.ingress.tls_secret,
            "kubernetes.io/tls",
            json!({"tls.crt": tls.cert_pem, "tls.key": tls.key_pem}),
        )?,
    ];
    // Namespace, then governance (as the summary's commands), secrets, the rest.
    let (namespaces, rest): (Vec<&Object>, Vec<&Object>) =
        objects.iter().partition(|o| matches!(o, Object::Namespace(_)));
    let undo_namespace = Undo::DeleteNamespace { name: ns.clone() };
    cluster.journal.record(undo_namespace.clone())?;
    for object in namespaces.into_iter().chain(governance.iter()).chain(secrets.iter()).chain(rest) {
        apply(client, object).await?;
    }
    timed(&mut out.timings, format!("{}: apply", env.result.env), since);
    let cx = LiveContext {
        env: env.result.env,
        fixture,
        workload: w,
        governance: &run.expectations.governance,
        autoscaling: &run.expectations.autoscaling,
        client: client.clone(),
        http: std::net::SocketAddr::from(([127, 0, 0, 1], cluster.http_port)),
        https: std::net::SocketAddr::from(([127, 0, 0, 1], cluster.https_port)),
        ca_pem: tls.ca_pem.clone(),
        timeouts: *t,
        controller: env.controller.to_owned(),
        tool_image: opts.tool_image.clone().unwrap_or_else(|| cluster.tool_image.clone()),
        factor,
        journal: cluster.journal,
        ingress_log: IngressLog::default(),
        restarts: RestartLog::default(),
    };
    cx.ingress_log.routing(Instant::now(), edge::routing_version(&cx).await);
    let rolled = {
        let since = Instant::now();
        let mut r = Recorder::new(cx.env, "live-rollout");
        let ok = rollout(&cx, &mut r).await;
        out.outcomes.append(&mut r.outcomes);
        timed(&mut out.timings, format!("{}: rollout", cx.env), since);
        ok
    };
    for (id, _) in LIVE_CHECKS.iter().skip(1) {
        let governed =
            matches!(*id, "live-limit-range-enforced" | "live-quota-enforced" | "live-pdb-drain" | "live-autoscaling");
        if governed && !fixture.governance {
            continue;
        }
        let mut r = Recorder::new(cx.env, id);
        let since = Instant::now();
        if opts.skip_checks.iter().any(|s| s == id) {
            r.exclude(&cx.deployment_label(), format!("--skip-check {id}"));
        } else if !rolled && *id != "live-inventory" {
            r.skip(
                &cx.deployment_label(),
                "precondition",
                "a rolled-out Deployment",
                "the rollout failed (see live-rollout)",
            );
        } else {
            // Progress: a live run takes minutes (an interrupt test waits for these too).
            eprintln!("live tier [{}]: {id}", cx.env);
            match *id {
                "live-inventory" => workload::inventory(&cx, &mut r).await,
                "live-replicas" => workload::replicas(&cx, &mut r).await,
                "live-probes" => workload::probes(&cx, &mut r).await,
                "live-unready-endpoints" => unready::unready_leaves_endpoints(&cx, &mut r).await,
                "live-tls" => edge::tls(&cx, &mut r).await,
                "live-https-redirect" => edge::https_redirect(&cx, &mut r).await,
                "live-security-headers" => edge::security_headers(&cx, &mut r).await,
                "live-cors" => edge::cors(&cx, &mut r).await,
                "live-api-docs" => edge::api_docs(&cx, &mut r).await,
                "live-limit-range-enforced" => admission::limit_range_enforced(&cx, &mut r).await,
                "live-quota-enforced" => admission::quota_enforced(&cx, &mut r).await,
                "live-pdb-drain" => drain::pdb_during_drain(&cx, &mut r).await,
                "live-rate-limit" => edge::rate_limit(&cx, &mut r).await,
                "live-no-restarts" => restarts::no_restarts(&cx, &mut r).await,
                "live-autoscaling" => {
                    let sections = autoscaling::autoscaling(&cx, opts.profile, &opts.report_dir, &mut r).await;
                    out.sections.extend(sections);
                }
                _ => r.record("harness", "check", "implemented", "unknown id", false),
            }
        }
        if r.outcomes.is_empty() {
            r.record("harness", "facts compared", "at least one", "none", false);
        }
        cx.restarts.sample(&cx).await;
        cx.ingress_log.routing(Instant::now(), edge::routing_version(&cx).await);
        out.outcomes.append(&mut r.outcomes);
        timed(&mut out.timings, format!("{}: {id}", cx.env), since);
    }
    if out.outcomes.iter().any(|o| o.env == cx.env && o.status == Status::Fail) {
        diagnostics(client, &ns, &opts.report_dir.join("diagnostics").join(cx.env.as_str())).await;
    }
    let since = Instant::now();
    if cluster.wait_cleanup {
        match journal::delete_namespace(client, &ns, t.rollout).await {
            Ok(()) => cluster.journal.done(&undo_namespace)?,
            // Reported beside the verdict and kept in the journal for the next run.
            Err(e) => out.cleanup.push(format!("{undo_namespace}: {e}")),
        }
    } else {
        // The cluster goes next: no need to wait.
        let api: Api<Namespace> = Api::all(client.clone());
        let _ = api.delete(&ns, &DeleteParams::background()).await;
        cluster.journal.done(&undo_namespace)?;
    }
    timed(&mut out.timings, format!("{}: cleanup", cx.env), since);
    Ok(())
}

/// The live tier on a cluster the caller owns (tests reuse one cluster for
/// many runs): gate, image, then every environment of `run`.
pub async fn run_on(run: &StaticRun, opts: &LiveOptions, cluster: &KitCluster) -> Result<LiveRun, LiveError> {
    let mut out = LiveRun::default();
    let journal = Journal::in_memory();
    let t = Timeouts::default();
    let result = body(run, opts, &Target::kit(cluster, &journal), &t, &mut out).await;
    if result.is_err() {
        // The cluster outlives the run (the tests share one): leave it clean.
        journal.unwind(&cluster.client, t.rollout).await;
    }
    result?;
    Ok(out)
}

async fn body(
    run: &StaticRun,
    opts: &LiveOptions,
    cluster: &Target<'_>,
    t: &Timeouts,
    out: &mut LiveRun,
) -> Result<(), LiveError> {
    let since = Instant::now();
    match cluster.kit {
        Some(_) => readiness::gate(&cluster.client, opts.agents + 1, cluster.http_port, t).await,
        None => readiness::gate_existing(&cluster.client, cluster.http_port, t).await,
    }
    .map_err(LiveError::Gate)?;
    timed(&mut out.timings, "readiness gate".into(), since);
    out.notes.push(match cluster.client.apiserver_version().await {
        Ok(v) => format!("Kubernetes {} ({})", v.git_version, v.platform),
        Err(e) => format!("Kubernetes version unknown: {e}"),
    });
    let controller = match &cluster.controller {
        Some(image) => image.clone(),
        None => controller_image(&cluster.client).await,
    };
    out.notes.push(format!("ingress controller: {controller}"));
    if let Some(kit) = cluster.kit {
        let since = Instant::now();
        kit.import_image(&opts.app_image).await.map_err(LiveError::Image)?;
        timed(&mut out.timings, "application image load".into(), since);
    } else {
        out.notes.push(
            "application image: the overlay's own reference, pulled by the cluster (--app-image is for kit clusters)"
                .into(),
        );
    }
    for result in &run.results {
        let fixture = &run.expectations.environments[&result.env];
        environment(run, Env { result, fixture, controller: &controller }, cluster, opts, t, out).await?;
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (a CI runner cancelling the job).
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Where the cleanup journals of existing clusters live.
fn journal_dir() -> PathBuf {
    std::env::var_os("CBAM_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/cbam-conformance"),
        PathBuf::from,
    )
}

/// The journal of an existing cluster, with what an interrupted earlier run
/// left undone already undone (a line per change, for the report).
async fn replayed_journal(cluster: &ExistingCluster, t: &Timeouts) -> Result<(Journal, Vec<String>), LiveError> {
    let journal = Journal::open(&journal::path_for(&journal_dir(), &cluster.server, &cluster.context))?;
    let leftovers: Vec<String> = journal.pending().iter().map(ToString::to_string).collect();
    let problems = journal.unwind(&cluster.client, t.rollout).await;
    if !problems.is_empty() {
        return Err(LiveError::Leftovers(problems.join("; ")));
    }
    Ok((journal, leftovers))
}

/// `--cleanup-only`: undo what interrupted runs left on an existing
/// cluster, and nothing else. Returns what was undone.
pub async fn cleanup_only(existing: &ExistingOptions) -> Result<Vec<String>, LiveError> {
    let t = Timeouts::default();
    let (client, context, server) = cbam_cluster::existing::client(existing).await?;
    let journal = Journal::open(&journal::path_for(&journal_dir(), &server, &context))?;
    let leftovers: Vec<String> = journal.pending().iter().map(ToString::to_string).collect();
    let problems = journal.unwind(&client, t.rollout).await;
    if problems.is_empty() { Ok(leftovers) } else { Err(LiveError::Leftovers(problems.join("; "))) }
}

/// Whatever the run did not undo itself (an error, an interrupt) is undone
/// now, newest first; the error says what happened to the cluster.
async fn finally(
    result: Result<(), LiveError>,
    journal: &Journal,
    client: &Client,
    t: &Timeouts,
) -> Result<(), LiveError> {
    let Err(error) = result else { return Ok(()) };
    let left: Vec<String> = journal.pending().iter().map(ToString::to_string).collect();
    let problems = journal.unwind(client, t.rollout).await;
    let summary = match (left.is_empty(), problems.is_empty()) {
        (true, _) => "the run had changed nothing on the cluster".to_owned(),
        (false, true) => format!("undone: {}", left.join(", ")),
        (false, false) => format!("NOT undone (the next run or --cleanup-only retries): {}", problems.join("; ")),
    };
    Err(match error {
        LiveError::Interrupted(_) => LiveError::Interrupted(summary),
        other => {
            eprintln!("live tier: after the error below, {summary}");
            other
        }
    })
}

/// The live tier on an existing cluster: nothing is created outside the
/// environments' namespaces, which must not exist before the run; every
/// change is journalled and undone on every exit path.
async fn run_existing(
    static_run: &StaticRun,
    opts: &LiveOptions,
    existing: &ExistingOptions,
) -> Result<LiveRun, LiveError> {
    let t = Timeouts::default();
    let mut out = LiveRun::default();
    let since = Instant::now();
    let cluster = ExistingCluster::connect(existing).await?;
    out.notes.push(format!(
        "cluster: existing, context {}, ingress {} through a port-forward on 127.0.0.1",
        cluster.context, cluster.ingress
    ));
    let (journal, leftovers) = match replayed_journal(&cluster, &t).await {
        Ok(j) => j,
        Err(e) => {
            cluster.close();
            return Err(e);
        }
    };
    if !leftovers.is_empty() {
        out.notes.push(format!("undone first, left by an interrupted earlier run: {}", leftovers.join(", ")));
    }
    timed(&mut out.timings, "connect".into(), since);
    let target = Target::existing(&cluster, &journal);
    let result = tokio::select! {
        result = body(static_run, opts, &target, &t, &mut out) => result,
        () = interrupted() => Err(LiveError::Interrupted(String::new())),
    };
    let result = finally(result, &journal, &cluster.client, &t).await;
    cluster.close();
    result?;
    Ok(out)
}

pub async fn run(static_run: &StaticRun, opts: &LiveOptions) -> Result<LiveRun, LiveError> {
    if let Provider::Existing(existing) = &opts.provider {
        return run_existing(static_run, opts, existing).await;
    }
    if !docker::engine_reachable().await {
        return Err(LiveError::NoEngine);
    }
    let image = kit::node_image()?;
    if !docker::image_present(&image).await {
        return Err(LiveError::NodeImageMissing(image));
    }
    if !opts.app_image.is_file() {
        return Err(LiveError::AppImageMissing(opts.app_image.clone()));
    }
    let t = Timeouts::default();
    let mut out = LiveRun::default();
    out.notes.push(format!("cluster: kit node image {image}, 1 server + {} agents", opts.agents));
    out.notes.push("TLS: served with a certificate from a CA generated for this run; the cert-manager ClusterIssuer annotations are checked by the static tier (Let's Encrypt is unreachable from a test cluster)".into());
    let since = Instant::now();
    let reuse = matches!(opts.provider, Provider::Kit { reuse: true });
    let name = if reuse { reuse_name(&image, opts.agents) } else { "cbam-conformance".to_owned() };
    let cluster = KitCluster::up(&KitOptions { name, agents: opts.agents, image, timeouts: t, reuse }).await?;
    timed(&mut out.timings, "cluster up".into(), since);
    // A cluster removed right after the run need not wait for its namespaces.
    let journal = Journal::in_memory();
    let target = Target { wait_cleanup: cluster.kept(), ..Target::kit(&cluster, &journal) };
    let result = tokio::select! {
        result = body(static_run, opts, &target, &t, &mut out) => result,
        () = interrupted() => Err(LiveError::Interrupted(String::new())),
    };
    // A kept cluster is left clean; one removed next needs no undo.
    let result = if cluster.kept() {
        finally(result, &journal, &cluster.client, &t).await
    } else {
        result.map_err(|e| match e {
            LiveError::Interrupted(_) => LiveError::Interrupted("the cluster the run created is removed".into()),
            other => other,
        })
    };
    if cluster.kept() {
        out.notes.push(format!(
            "cluster {} kept for reuse (--reuse); remove it with `CBAM_CLUSTER={} just cluster down`",
            cluster.name, cluster.name
        ));
    }
    let since = Instant::now();
    let down = cluster.down().await;
    timed(&mut out.timings, "cluster down".into(), since);
    result?;
    down?;
    Ok(out)
}
