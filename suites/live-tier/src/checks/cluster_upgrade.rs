//! `live-cluster-upgrade` (nightly): every worker node upgraded under load,
//! the way its provider can. On the kit, replaced, as a managed node pool's
//! blue-green upgrade does (GKE): new workers join,
//! one per old one, and are Ready (the app image served to each first); the
//! old pool is cordoned and drained as one batch through the Eviction API
//! (every app pod evicted at once, retried while the budget refuses, then
//! the other pods), and once every evicted app pod is gone (shut down, as
//! `kubectl drain` waits for) each old node is removed, machine and Node.
//! One batch, so the budget is what keeps replicas available: a drain per
//! node, each waiting for its pods to finish, gives the last replacement
//! time to be Ready and would pass a budget that allows everything. All of
//! it under the two-path load with pipeline runs beside, and a held run on
//! each pod evicted. The in-cluster prober runs on the control-plane node,
//! which an upgrade of the workers leaves in place, so every worker is
//! replaced with the prober running throughout. Judged as a drain is (no
//! failed request, no cut run, every held run completed, minAvailable Ready
//! throughout), plus: the whole upgrade within its budget, and at the end
//! the documented replicas Ready with none on a replaced node.
//!
//! kind cannot add a node to a running cluster: there each worker in turn
//! is upgraded in place, as kubeadm's upgrade of a worker is (cordoned,
//! drained, its kubelet stopped and started again, Ready, uncordoned), so
//! pods move more than once; the report says which upgrade was proved.

use std::time::{Duration, Instant};

use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;

use crate::actions::hpa_rest;
use crate::actions::node_drain::{
    app_pods_gone, app_pods_on, cordon, empty_nodes_named, evict_the_rest, replaced_elsewhere,
};
use cbam_cluster::cluster::UpgradeStyle;
use cbam_model::fixtures::AboveMinimum;

use crate::actions::node_pool::{self, NodePoolError};
use crate::app_pods::{app_pods, is_ready, node_of};
use crate::context::LiveContext;
use crate::judges::disruption::judge;
use crate::traffic::prober_pod::Placement;
use crate::traffic::under_load::{Session, Shape, write_evidence};

#[derive(Debug, thiserror::Error)]
enum UpgradeError {
    #[error("join a new worker")]
    Join(#[source] NodePoolError),
    #[error("cordon {0}")]
    Cordon(String, #[source] crate::journal::JournalError),
    #[error("list the app pods on {0}")]
    Pods(String, #[source] crate::app_pods::WorkloadError),
    #[error("drain {0}")]
    Drain(String, #[source] cbam_cluster::wait::WaitError),
    #[error("remove {0}")]
    Remove(String, #[source] NodePoolError),
    #[error("restart the kubelet of {0}")]
    Restart(String, #[source] NodePoolError),
    #[error("uncordon {0}")]
    Uncordon(String, #[source] crate::journal::JournalError),
}

/// The kubelet versions of `nodes`, as one line (`?` where unread).
async fn versions(cx: &LiveContext<'_>, nodes: &[String]) -> String {
    let mut found = std::collections::BTreeSet::new();
    for node in nodes {
        found.insert(node_pool::kubelet_version(cx, node).await.unwrap_or_else(|| "?".to_owned()));
    }
    found.into_iter().collect::<Vec<_>>().join(", ")
}

/// The surge upgrade: the new pool joined, the old one cordoned, drained
/// as one batch (every eviction at once, retried while the budget refuses),
/// its pods gone, then removed. Each step's line for the report.
async fn surge(
    cx: &LiveContext<'_>,
    session: &mut Session,
    old: &[String],
    want: usize,
    lines: &mut Vec<String>,
    strays: &mut Vec<String>,
) -> Result<(), UpgradeError> {
    let before = versions(cx, old).await;
    let mut joined = Vec::new();
    for _ in old {
        let since = Instant::now();
        session.mark("join");
        let new = node_pool::add_worker(cx).await.map_err(UpgradeError::Join)?;
        session.mark(format!("{new} Ready"));
        lines.push(format!("{new} joined and Ready in {:.0} s", since.elapsed().as_secs_f64()));
        joined.push(new);
    }
    let after = versions(cx, &joined).await;
    // One node image serves both pools (no second one is built offline):
    // the report says so rather than calling it a version upgrade.
    lines.push(if before == after {
        format!("kubelet {after} on the old and the new workers (nodes replaced at the same version)")
    } else {
        format!("kubelet {before} -> {after}")
    });
    for node in old {
        cordon(cx, node, true).await.map_err(|e| UpgradeError::Cordon(node.clone(), e))?;
    }
    session.mark(format!("cordon {}", old.join(", ")));
    // Each pod about to be evicted holds a run that needs most of its
    // shutdown timeout.
    let mut pods = Vec::new();
    for node in old {
        pods.extend(app_pods_on(cx, node).await.map_err(|e| UpgradeError::Pods(node.clone(), e))?);
    }
    session.hold_runs(cx, &pods).await;
    let since = Instant::now();
    session.mark(format!("drain {}", old.join(", ")));
    let named = old.join(", ");
    let (evicted, refused) = empty_nodes_named(cx, old).await.map_err(|e| UpgradeError::Drain(named.clone(), e))?;
    strays.extend(evicted.iter().filter(|p| !pods.contains(p)).cloned());
    let evicted = evicted.len();
    let mut others = 0;
    for node in old {
        others += evict_the_rest(cx, node).await.map_err(|e| UpgradeError::Drain(node.clone(), e))?;
    }
    for node in old {
        app_pods_gone(cx, node).await.map_err(|e| UpgradeError::Drain(node.clone(), e))?;
    }
    session.mark("old nodes rid of the app");
    lines.push(format!(
        "{named} drained in {:.0} s ({evicted} app pods evicted, {refused} refusals (429) retried; {others} other pods evicted)",
        since.elapsed().as_secs_f64()
    ));
    for node in old {
        node_pool::remove_worker(cx, node).await.map_err(|e| UpgradeError::Remove(node.clone(), e))?;
        session.mark(format!("remove {node}"));
    }
    // The replacements: every old node is gone.
    replaced_elsewhere(cx, old.last().map_or("", String::as_str), want)
        .await
        .map_err(|e| UpgradeError::Drain(named, e))?;
    session.mark("replacements Ready");
    Ok(())
}

/// The in-place upgrade, one worker at a time: cordoned, drained (its pods
/// holding runs; evictions retried while the budget refuses), the evicted
/// pods gone, the kubelet restarted and the node Ready, uncordoned. Each
/// step's line for the report.
async fn in_place(
    cx: &LiveContext<'_>,
    session: &mut Session,
    workers: &[String],
    lines: &mut Vec<String>,
    strays: &mut Vec<String>,
) -> Result<(), UpgradeError> {
    let before = versions(cx, workers).await;
    for node in workers {
        let since = Instant::now();
        cordon(cx, node, true).await.map_err(|e| UpgradeError::Cordon(node.clone(), e))?;
        session.mark(format!("cordon {node}"));
        let pods = app_pods_on(cx, node).await.map_err(|e| UpgradeError::Pods(node.clone(), e))?;
        session.hold_runs(cx, &pods).await;
        session.mark(format!("drain {node}"));
        let (evicted, refused) = empty_nodes_named(cx, std::slice::from_ref(node))
            .await
            .map_err(|e| UpgradeError::Drain(node.clone(), e))?;
        strays.extend(evicted.iter().filter(|p| !pods.contains(p)).cloned());
        let evicted = evicted.len();
        let others = evict_the_rest(cx, node).await.map_err(|e| UpgradeError::Drain(node.clone(), e))?;
        app_pods_gone(cx, node).await.map_err(|e| UpgradeError::Drain(node.clone(), e))?;
        let drained = since.elapsed();
        session.mark(format!("restart kubelet {node}"));
        node_pool::restart_kubelet(cx, node).await.map_err(|e| UpgradeError::Restart(node.clone(), e))?;
        cordon(cx, node, false).await.map_err(|e| UpgradeError::Uncordon(node.clone(), e))?;
        session.mark(format!("uncordon {node}"));
        lines.push(format!(
            "{node} drained in {:.0} s ({evicted} app pods evicted, {refused} refusals (429) retried; {others} other pods evicted), kubelet restarted, Ready and uncordoned {:.0} s later",
            drained.as_secs_f64(),
            (since.elapsed() - drained).as_secs_f64()
        ));
    }
    let after = versions(cx, workers).await;
    // kind's node image is the one the cluster started with: the kubelet
    // restarted is the same binary, and the report says so.
    lines.push(if before == after {
        format!("kubelet {after} before and after (upgraded in place at the same version)")
    } else {
        format!("kubelet {before} -> {after}")
    });
    Ok(())
}

/// Which of the two upgrades a session runs.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// From rest, the HPA at its minimum.
    AtRest,
    /// With more runs, the HPA held above its minimum.
    AboveMinimum(AboveMinimum),
}

impl Load {
    /// The words naming it in every fact.
    fn what(self) -> &'static str {
        match self {
            Load::AtRest => "upgrade",
            Load::AboveMinimum(_) => "upgrade above the HPA's minimum",
        }
    }
}

pub(crate) async fn cluster_upgrade(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = cx.deployment_label();
    let style = match cx.cluster.workers().and_then(|_| cx.cluster.upgrade_style()) {
        Ok(style) => style,
        Err(why) => return r.skip(&object, "cluster upgrade", "workers the harness can upgrade", why),
    };
    // From rest, as node loss: the budgets hold at the documented replicas.
    if !hpa_rest::record_rest(cx, r, &object, "upgrade").await {
        return;
    }
    if upgrade_under_load(cx, r, &object, style, Load::AtRest).await {
        // Then again (the workers the first one left), at a higher count.
        let scaled = Load::AboveMinimum(cx.disruption.budgets.upgrade.above_minimum);
        upgrade_under_load(cx, r, &object, style, scaled).await;
    }
}

/// Waits until the HPA wants at least `replicas` and that many are Ready;
/// the count Ready then.
async fn scaled_up(cx: &LiveContext<'_>, replicas: u32) -> Result<i32, cbam_cluster::wait::WaitError> {
    use cbam_cluster::wait::{Poll, until};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use kube::Api;
    let want = i32::try_from(replicas).unwrap_or(i32::MAX);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cx.client.clone(), cx.namespace());
    let deployments: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let (hpa, deployment) = (&cx.governance.hpa.name, &cx.workload.deployment);
    let bound = cx.timeouts.metrics_pipeline + cx.timeouts.rollout;
    until(&format!("HPA {hpa} at {want} replicas or more, as many Ready"), bound, || async {
        let desired = match hpas.get(hpa).await {
            Ok(h) => h.status.map_or(0, |s| s.desired_replicas),
            Err(e) => return Poll::failed(e.to_string(), &e),
        };
        let ready = match deployments.get(deployment).await {
            Ok(d) => d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
            Err(e) => return Poll::failed(e.to_string(), &e),
        };
        if desired >= want && ready >= want {
            Poll::Done(ready)
        } else {
            Poll::Pending(format!("desired {desired}, Ready {ready}"))
        }
    })
    .await
}

/// One upgrade of every worker under the two-path load, judged; whether it
/// went through (the next one starts from what it left).
async fn upgrade_under_load(
    cx: &LiveContext<'_>,
    r: &mut Recorder,
    object: &str,
    style: UpgradeStyle,
    load: Load,
) -> bool {
    let what = load.what();
    let workers = match cx.cluster.workers() {
        Ok(workers) if !workers.is_empty() => workers,
        Ok(_) => {
            r.record(object, &format!("the {what}"), "at least one worker node", "none", false);
            return false;
        }
        Err(why) => {
            r.record(object, &format!("the {what}"), "workers the harness can upgrade", why.to_string(), false);
            return false;
        }
    };
    let budget = cx.disruption.budgets.upgrade;
    let count = u32::try_from(workers.len()).unwrap_or(u32::MAX);
    let per_node = Duration::from_secs(budget.per_node_seconds);
    let settle = Duration::from_secs(cx.disruption.load.settle_seconds);
    // The load outlasts the scale-up and every replacement's bound (a
    // session is always finished; this only stops a prober nobody stops).
    let t = &cx.timeouts;
    let bound = (t.node_start + t.node_component + t.nodes_ready + t.drain * 2) * count
        + t.drain
        + t.metrics_pipeline
        + t.rollout
        + settle * 2;
    let runs_per_second = match load {
        Load::AtRest => None,
        Load::AboveMinimum(scaled) => Some(scaled.runs_per_second),
    };
    let shape = Shape { bound, placement: Placement::ControlPlane, runs_per_second };
    let Some(mut session) = Session::open_shaped(cx, r, object, what, shape).await else { return false };
    session.settle().await;
    let mut want = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
    if let Load::AboveMinimum(scaled) = load {
        let since = Instant::now();
        let reached = scaled_up(cx, scaled.replicas).await;
        r.record(
            object,
            &format!("Ready replicas before the {what}"),
            format!(">= {} (the HPA held above its minimum by {} runs/s)", scaled.replicas, scaled.runs_per_second),
            match &reached {
                Ok(n) => format!("{n} after {:.0} s", since.elapsed().as_secs_f64()),
                Err(e) => chain(e),
            },
            reached.is_ok(),
        );
        match reached {
            Ok(_) => session.mark(format!("{} replicas", scaled.replicas)),
            Err(_) => {
                session.finish(cx).await;
                return false;
            }
        }
        want = usize::try_from(scaled.replicas).unwrap_or(0);
    }
    let started = Instant::now();
    let (mut lines, mut strays) = (Vec::new(), Vec::new());
    let upgraded = match style {
        UpgradeStyle::Surge => surge(cx, &mut session, &workers, want, &mut lines, &mut strays).await,
        UpgradeStyle::InPlace => in_place(cx, &mut session, &workers, &mut lines, &mut strays).await,
    };
    let failure = upgraded.err().map(|e| chain(&e));
    let took = started.elapsed();
    session.settle().await;
    let ev = session.finish(cx).await;
    let (done, expected) = match style {
        UpgradeStyle::Surge => (
            format!(
                "{} workers replaced (new ones joined, old ones cordoned, drained as one batch, removed)",
                workers.len()
            ),
            "every one replaced, the Ready replicas back",
        ),
        UpgradeStyle::InPlace => (
            format!(
                "{} workers upgraded in place, one at a time (cordoned, drained, kubelet restarted, uncordoned; {} cannot add a node)",
                workers.len(),
                cx.cluster.provider()
            ),
            "every one upgraded, the Ready replicas back",
        ),
    };
    let done = match load {
        Load::AtRest => done,
        Load::AboveMinimum(_) => format!("{done}, above the HPA's minimum"),
    };
    r.record(
        object,
        &done,
        expected,
        match &failure {
            None => lines.join("; "),
            Some(e) => format!("{}; then {e}", lines.join("; ")),
        },
        failure.is_none(),
    );
    let limit = per_node * count;
    r.record(
        object,
        &format!("the whole {what}'s duration"),
        format!("<= {} s ({} s per node)", limit.as_secs(), budget.per_node_seconds),
        format!("{:.0} s", took.as_secs_f64()),
        failure.is_none() && took <= limit,
    );
    // A pod the drain evicted that was not there at the cordon was
    // scheduled onto a cordoned worker since: it tolerates the cordon.
    r.record(
        object,
        &format!("app pods scheduled onto a cordoned worker during the {what}"),
        "none",
        if strays.is_empty() { "none".to_owned() } else { format!("{} (evicted again)", strays.join(", ")) },
        strays.is_empty(),
    );
    let min_ready = usize::try_from(cx.governance.pdb.min_available).unwrap_or(0);
    judge(r, object, what, &ev, budget.requests(), min_ready);
    let (found, passed) = match app_pods(cx).await {
        Ok(pods) => {
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            // In place, the upgraded workers are the nodes the pods return to.
            let stranded: Vec<String> = match style {
                UpgradeStyle::Surge => {
                    pods.iter().filter_map(|p| node_of(p).map(str::to_owned)).filter(|n| workers.contains(n)).collect()
                }
                UpgradeStyle::InPlace => Vec::new(),
            };
            let line = if style == UpgradeStyle::InPlace {
                format!("{ready} Ready")
            } else if stranded.is_empty() {
                format!("{ready} Ready, none on a replaced node")
            } else {
                format!("{ready} Ready; pods on replaced nodes: {}", stranded.join(", "))
            };
            (line, stranded.is_empty() && ready >= want)
        }
        Err(e) => (chain(&e), false),
    };
    let expected = match style {
        UpgradeStyle::Surge => format!("{want} Ready or more, none on a replaced node"),
        UpgradeStyle::InPlace => format!("{want} Ready or more"),
    };
    r.record(object, &format!("the Deployment after the {what}"), expected, found, passed);
    let (name, title) = match load {
        Load::AtRest => ("upgrade", "every worker upgraded under load"),
        Load::AboveMinimum(_) => ("upgrade-above-minimum", "every worker upgraded under load above the HPA's minimum"),
    };
    r.section(write_evidence(cx.report_dir, &format!("{}-{name}", cx.env), &format!("{}: {title}", cx.env), &ev));
    failure.is_none()
}
