//! The live tier's run, the cluster's lifecycle: a kit cluster up and gated
//! (or an existing one connected and its journal replayed), the application
//! image loaded, every environment's phases (`phases.rs`), and the cluster
//! down or left as found on every exit path (`cleanup.rs`).

use std::time::Instant;

use cbam_cluster::docker;
use cbam_cluster::existing::{ExistingCluster, ExistingOptions};
use cbam_cluster::kind::{KindCluster, KindOptions};
use cbam_cluster::kit;
use cbam_cluster::provider::{KitCluster, KitOptions, registry_beside, reuse_name};
use cbam_cluster::timeouts::Timeouts;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Client;
use kube::api::Api;

use cbam_model::run::{LiveRun, StaticRun};

use crate::checks::LIVE_CHECKS;
use crate::journal::Journal;
use crate::run::cleanup::{finally, interrupted, replayed_journal};
use crate::run::error::LiveError;
use crate::run::phases::{Env, environment, timed};
use crate::run::preflight::Preflight;
use crate::run::target::{LiveOptions, Provider, Target};

pub mod cleanup;
pub(crate) mod diagnostics;
pub mod error;
pub(crate) mod fit;
pub(crate) mod phases;
pub(crate) mod preflight;
pub(crate) mod run_ca;
pub mod target;

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

/// The archives a cluster the harness created is served: the application's
/// and, unless `--tool-image` names another that is not built here, the
/// harness's tool image.
pub(crate) fn served_archives(opts: &LiveOptions) -> Vec<&std::path::Path> {
    let mut archives = vec![opts.app_image.as_path()];
    if opts.tool_archive.is_file() {
        archives.push(opts.tool_archive.as_path());
    }
    archives
}

/// The live tier on a cluster the caller owns (tests reuse one cluster for
/// many runs): gate, image, then every environment of `run`.
pub async fn run_on(run: &StaticRun, opts: &LiveOptions, cluster: &KitCluster) -> Result<LiveRun, LiveError> {
    let mut out = LiveRun::default();
    let journal = Journal::in_memory();
    let t = opts.timeouts;
    let tool = opts.tool_image().map_err(LiveError::ToolImage)?;
    let result = body(run, opts, &Target::owned(cluster, &journal, &tool), &t, &mut out).await;
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
    let archives = served_archives(opts);
    match cluster.cluster.serve_image(&archives, &registry, t.node_component) {
        Some(served) => {
            let since = Instant::now();
            served.await.map_err(LiveError::Image)?;
            timed(&mut out.timings, "application and tool images served".into(), since);
        }
        None => out.notes.push(
            "application image: the overlay's own reference, pulled by the cluster (--app-image is for clusters the harness creates)"
                .into(),
        ),
    }
    let preflight = if cluster.cluster.owned() {
        Preflight::complete()
    } else {
        let since = Instant::now();
        let first = run.results.first().map(|r| run.expectations.environments[&r.env].namespace.clone());
        let ask = preflight::Ask {
            client: &cluster.client,
            http_port: cluster.http_port,
            ingress_classes: [run.expectations.workload.ingress.class.clone()].into(),
            namespace: first.as_deref().unwrap_or("default"),
            tool_image: &cluster.tool_image,
            journal: cluster.journal,
            timeouts: t,
        };
        let found = preflight::existing(&ask).await;
        out.notes.extend(found.notes(LIVE_CHECKS));
        timed(&mut out.timings, "preflight".into(), since);
        found
    };
    for result in &run.results {
        let fixture = &run.expectations.environments[&result.env];
        let env = Env { result, fixture, controller: &controller, preflight: &preflight };
        environment(run, env, cluster, opts, t, out).await?;
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
    let tool = opts.tool_image().map_err(LiveError::ToolImage)?;
    let target = Target::existing(&cluster, &journal, &tool);
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
                Err(e) => format!("the kind cluster being created could not be removed: {}", cbam_error_chain::render(&e)),
            };
            return Err(LiveError::Interrupted(removed));
        }
    };
    timed(&mut out.timings, "cluster up".into(), since);
    let journal = Journal::in_memory();
    // Removed right after the run: no need to wait for its namespaces.
    let tool = opts.tool_image().map_err(LiveError::ToolImage)?;
    let target = Target { wait_cleanup: false, ..Target::owned(&cluster, &journal, &tool) };
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
    // Read before anything starts: a missing or foreign tool archive is the
    // caller's to fix (exit 2), not a check's.
    let tool = || opts.tool_image().map(drop).map_err(LiveError::ToolImage);
    if let Provider::Existing(existing) = &opts.provider {
        tool()?;
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
    if let Provider::Kit { upgrade_to: Some(target), .. } = &opts.provider
        && !docker::image_present(target).await
    {
        return Err(LiveError::UpgradeImageMissing(target.clone()));
    }
    for file in [opts.app_image.clone(), registry_beside(&opts.app_image)] {
        if !file.is_file() {
            return Err(LiveError::AppImageMissing(file));
        }
    }
    tool()?;
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
    let tool = opts.tool_image().map_err(LiveError::ToolImage)?;
    let target = Target { wait_cleanup: cluster.kept(), ..Target::owned(&cluster, &journal, &tool) };
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
