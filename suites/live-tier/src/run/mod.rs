//! The live tier's run, the cluster's lifecycle: a kit cluster up and gated
//! (or an existing one connected and its journal replayed), the application
//! image loaded, every environment's phases (`phases.rs`), and the cluster
//! down or left as found on every exit path (`cleanup.rs`).

use std::path::PathBuf;
use std::time::Instant;

use cbam_cluster::cluster::Cluster;
use cbam_cluster::docker::{self, DockerError};
use cbam_cluster::existing::{ExistingCluster, ExistingError, ExistingOptions};
use cbam_cluster::kind::{KindCluster, KindError, KindOptions};
use cbam_cluster::kit::{self, KitError};
use cbam_cluster::provider::{ClusterError, KitCluster, KitOptions, registry_beside, reuse_name};
use cbam_cluster::readiness::GateError;
use cbam_cluster::timeouts::Timeouts;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Client;
use kube::api::Api;

use crate::live::apply::ApplyError;
use crate::live::autoscaling::Profile;
use crate::live::cleanup::{finally, interrupted, replayed_journal};
use crate::live::diagnostics;
use crate::live::journal::{Journal, JournalError};
use crate::live::phases::{Env, environment, timed};
use crate::live::run_ca::RunCaError;
use crate::outcome::Outcome;
use crate::static_tier::StaticRun;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("reach a Docker engine (run `just engine`, ci/engine.sh)")]
    NoEngine,
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error("find the kit's node image {0} in Docker (run `just kit`)")]
    NodeImageMissing(String),
    #[error("read {0}, the application image or the registry serving it (run `just image`, or pass --app-image)")]
    AppImageMissing(PathBuf),
    #[error("read {0}, the prober the zero-downtime checks run in the cluster (run `just image`, or pass --prober)")]
    ProberMissing(PathBuf),
    #[error("bring the cluster up")]
    Cluster(#[source] Box<ClusterError>),
    #[error("bring the kind cluster up")]
    Kind(#[source] Box<KindError>),
    #[error("pass the readiness gate")]
    Gate(#[source] GateError),
    #[error("serve the application image to the nodes")]
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

impl From<KindError> for LiveError {
    fn from(e: KindError) -> Self {
        LiveError::Kind(Box::new(e))
    }
}

impl From<ClusterError> for LiveError {
    fn from(e: ClusterError) -> Self {
        LiveError::Cluster(Box::new(e))
    }
}

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub app_image: PathBuf,
    /// The static `cbam-prober` binary (copied into a tool pod).
    pub prober: PathBuf,
    /// A previous release to roll out from and back to (`--baseline`).
    pub baseline: Option<crate::static_tier::Baseline>,
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
    /// Every wait's bound (fixtures/timeouts.yaml, `--timeout` applied).
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone)]
pub enum Provider {
    /// A kit cluster (1 server + `agents`), created and removed by the run,
    /// or with `reuse` kept warm and attached to by the next run; of
    /// `node_image` (k3s's interface), else the kit's.
    Kit { reuse: bool, node_image: Option<String> },
    /// A kind cluster (1 control plane + `agents` workers) by the real kind
    /// CLI on `node_image` (else the kind node image of the kit), created and
    /// removed by the run.
    Kind { node_image: Option<String> },
    /// A cluster from a kubeconfig; left as found.
    Existing(ExistingOptions),
}

/// The cluster a run talks to, whoever made it.
pub struct Target<'c> {
    pub client: Client,
    pub http_port: u16,
    pub https_port: u16,
    /// The provider: gate, image serving, ownership, nodes it may stop.
    pub(crate) cluster: &'c dyn Cluster,
    pub(crate) tool_image: String,
    /// Wait for each namespace to be gone (not when the cluster goes next).
    pub(crate) wait_cleanup: bool,
    /// The ingress controller's image when the run knows which one it
    /// reaches (the port-forwarded pod of an existing cluster).
    pub(crate) controller: Option<String>,
    /// Every change the run makes to the cluster, to undo.
    pub(crate) journal: &'c Journal,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("https_port", &self.https_port)
            .field("provider", &self.cluster.provider())
            .finish_non_exhaustive()
    }
}

impl<'c> Target<'c> {
    /// A cluster the harness made (kit or kind): the kit's tool image is in
    /// its nodes.
    pub fn owned(cluster: &'c dyn Cluster, journal: &'c Journal) -> Self {
        Target {
            client: cluster.client().clone(),
            http_port: cluster.http_port(),
            https_port: cluster.https_port(),
            cluster,
            tool_image: kit::TOOL_IMAGE.to_owned(),
            wait_cleanup: true,
            controller: None,
            journal,
        }
    }

    fn existing(cluster: &'c ExistingCluster, journal: &'c Journal) -> Self {
        Target {
            // Pulled by the cluster itself (the harness reaches no registry).
            tool_image: "docker.io/library/busybox:1.37".to_owned(),
            controller: Some(cluster.ingress_image.clone()),
            ..Target::owned(cluster, journal)
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

/// The live tier on a cluster the caller owns (tests reuse one cluster for
/// many runs): gate, image, then every environment of `run`.
pub async fn run_on(run: &StaticRun, opts: &LiveOptions, cluster: &KitCluster) -> Result<LiveRun, LiveError> {
    let mut out = LiveRun::default();
    let journal = Journal::in_memory();
    let t = opts.timeouts;
    let result = body(run, opts, &Target::owned(cluster, &journal), &t, &mut out).await;
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
    if let Err(e) = cluster.cluster.gate(t).await {
        let dir = opts.report_dir.join("diagnostics").join("gate");
        out.notes.extend(diagnostics::node_logs(cluster.cluster, &dir).await);
        return Err(LiveError::Gate(e));
    }
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
    let registry = registry_beside(&opts.app_image);
    match cluster.cluster.serve_image(&opts.app_image, &registry, t.node_component) {
        Some(served) => {
            let since = Instant::now();
            served.await.map_err(LiveError::Image)?;
            timed(&mut out.timings, "application image served".into(), since);
        }
        None => out.notes.push(
            "application image: the overlay's own reference, pulled by the cluster (--app-image is for clusters the harness creates)"
                .into(),
        ),
    }
    for result in &run.results {
        let fixture = &run.expectations.environments[&result.env];
        environment(run, Env { result, fixture, controller: &controller }, cluster, opts, t, out).await?;
    }
    Ok(())
}

/// The live tier on an existing cluster: nothing is created outside the
/// environments' namespaces, which must not exist before the run; every
/// change is journalled and undone on every exit path.
async fn run_existing(
    static_run: &StaticRun,
    opts: &LiveOptions,
    existing: &ExistingOptions,
) -> Result<LiveRun, LiveError> {
    let t = opts.timeouts;
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

const TLS_NOTE: &str = "TLS: served with a certificate from a CA generated for this run; the cert-manager ClusterIssuer annotations are checked by the static tier (Let's Encrypt is unreachable from a test cluster)";

/// The live tier on a kind cluster the run creates with the real kind CLI
/// and removes at the end (on Ctrl-C and SIGTERM too).
async fn run_kind(static_run: &StaticRun, opts: &LiveOptions, image: String) -> Result<LiveRun, LiveError> {
    let t = opts.timeouts;
    let mut out = LiveRun::default();
    out.notes.push(format!(
        "cluster: kind (the real kind CLI), node image {image}, 1 control plane + {} workers",
        opts.agents
    ));
    out.notes.push(TLS_NOTE.into());
    let since = Instant::now();
    // kind's whole create (nodes, kubeadm init, joins, CNI, storage) and the
    // addons: three node starts' bound.
    let kind_opts = KindOptions {
        name: "cbam-conformance".into(),
        workers: opts.agents,
        image,
        create_timeout: t.node_start * 3,
        kept_storage: None,
    };
    let cluster = tokio::select! {
        cluster = KindCluster::up(&kind_opts) => cluster?,
        () = interrupted() => {
            // An interrupted create: kind deletes what it made only on failure.
            let removed = match cbam_cluster::kind::delete_cluster(&kind_opts.name).await {
                Ok(()) => "the kind cluster being created is removed".to_owned(),
                Err(e) => format!("the kind cluster being created could not be removed: {}", cbam_cluster::error_chain::render(&e)),
            };
            return Err(LiveError::Interrupted(removed));
        }
    };
    timed(&mut out.timings, "cluster up".into(), since);
    let journal = Journal::in_memory();
    // Removed right after the run: no need to wait for its namespaces.
    let target = Target { wait_cleanup: false, ..Target::owned(&cluster, &journal) };
    let result = tokio::select! {
        result = body(static_run, opts, &target, &t, &mut out) => result,
        () = interrupted() => Err(LiveError::Interrupted("the cluster the run created is removed".into())),
    };
    let since = Instant::now();
    let down = cluster.down().await;
    timed(&mut out.timings, "cluster down".into(), since);
    result?;
    down?;
    Ok(out)
}

pub async fn run(static_run: &StaticRun, opts: &LiveOptions) -> Result<LiveRun, LiveError> {
    let prober = || if opts.prober.is_file() { Ok(()) } else { Err(LiveError::ProberMissing(opts.prober.clone())) };
    if let Provider::Existing(existing) = &opts.provider {
        prober()?;
        return run_existing(static_run, opts, existing).await;
    }
    if !docker::engine_reachable().await {
        return Err(LiveError::NoEngine);
    }
    let image = match &opts.provider {
        Provider::Kit { node_image: Some(image), .. } | Provider::Kind { node_image: Some(image) } => image.clone(),
        Provider::Kind { node_image: None } => cbam_cluster::kind::node_image()?,
        _ => kit::node_image()?,
    };
    // A published kind node image given by reference is kind's to pull.
    let given_kind_image = matches!(opts.provider, Provider::Kind { node_image: Some(_) });
    if !given_kind_image && !docker::image_present(&image).await {
        return Err(LiveError::NodeImageMissing(image));
    }
    for file in [opts.app_image.clone(), registry_beside(&opts.app_image)] {
        if !file.is_file() {
            return Err(LiveError::AppImageMissing(file));
        }
    }
    prober()?;
    if matches!(opts.provider, Provider::Kind { .. }) {
        return run_kind(static_run, opts, image).await;
    }
    let t = opts.timeouts;
    let mut out = LiveRun::default();
    out.notes.push(format!("cluster: k3s interface, node image {image}, 1 server + {} agents", opts.agents));
    out.notes.push(TLS_NOTE.into());
    let since = Instant::now();
    let reuse = matches!(opts.provider, Provider::Kit { reuse: true, .. });
    let name = if reuse { reuse_name(&image, opts.agents) } else { "cbam-conformance".to_owned() };
    let cluster = KitCluster::up(&KitOptions {
        name,
        agents: opts.agents,
        image,
        timeouts: t,
        reuse,
        keep: false,
        component_args: Vec::new(),
    })
    .await?;
    timed(&mut out.timings, "cluster up".into(), since);
    // A cluster removed right after the run need not wait for its namespaces.
    let journal = Journal::in_memory();
    let target = Target { wait_cleanup: cluster.kept(), ..Target::owned(&cluster, &journal) };
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
            "cluster {} kept for reuse (--reuse); remove it with `just cluster down --name {}`",
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
