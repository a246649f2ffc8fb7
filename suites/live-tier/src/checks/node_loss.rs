//! `live-node-loss` (nightly): an agent node that hosts an app pod is killed
//! (its container SIGKILLed, as a machine loses power) while both probers
//! run, then started again. Measured and judged against
//! fixtures/disruption.yaml: the requests that failed (the dead node's pods
//! stay in the endpoints until the control plane marks the node NotReady),
//! how soon the lost pods are replaced and Ready elsewhere, how soon the node
//! is Ready again, and the Ready replicas throughout. Only on a cluster the
//! harness created: an existing cluster's nodes are not the harness's to stop.

use std::time::{Duration, Instant};

use cbam_cluster::docker::{DockerError, docker};
use cbam_cluster::wait::{Poll, WaitError, until};
use cbam_prober::runs::{RunOutcome, RunTally};
use cbam_prober::summary::Summary;
use cbam_prober::{Kind, Record};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use crate::actions::node_pool::node_ready;
use crate::actions::{hpa_rest, respread};
use crate::app_pods::{WorkloadError, app_pods, is_ready, node_of};
use crate::context::LiveContext;
use crate::judges::disruption::Evidence;
use crate::traffic::prober_pod;
use crate::traffic::under_load::{Session, write_evidence};
use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;

/// The agent to kill: one hosting a Ready app pod (the fewest, of those)
/// and not the prober pod (whose records would die with it); never the
/// first node, the server that runs the control plane.
#[derive(Debug, thiserror::Error)]
enum NodeLossError {
    #[error("list the app pods")]
    Pods(#[source] WorkloadError),
    #[error("find an agent hosting a Ready app pod without the prober (prober on {0:?})")]
    NoVictim(Option<String>),
    #[error("start the node's container again")]
    Start(#[source] DockerError),
    #[error(transparent)]
    Wait(#[from] WaitError),
}

async fn victim(cx: &LiveContext<'_>, nodes: &[(String, String)]) -> Result<(String, String), NodeLossError> {
    let pods = app_pods(cx).await.map_err(NodeLossError::Pods)?;
    let prober: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let prober_node = prober.get(prober_pod::POD).await.ok().and_then(|p| node_of(&p).map(str::to_owned));
    let ready_on = |node: &str| pods.iter().filter(|p| is_ready(p) && node_of(p) == Some(node)).count();
    // Of those, the one hosting the fewest: after `respread` one each;
    // where it could not move a pod, the loss of as few replicas as the
    // placement allows (no budget holds against a lost node).
    nodes
        .iter()
        .skip(1)
        .filter(|(name, _)| Some(name.as_str()) != prober_node.as_deref() && ready_on(name) > 0)
        .min_by_key(|(name, _)| ready_on(name))
        .cloned()
        .ok_or(NodeLossError::NoVictim(prober_node))
}

/// Of `records`' failures after `after_ms`, how many reused the source port
/// of an earlier attempt, among them or `beside` (the same prober's other
/// stream: one port space), that got no answer (timed out or unreachable):
/// the node's conntrack entry for that port may still point at the dead
/// pod, whatever the endpoints say (see `SYN_SENT_SECONDS` in the cluster
/// crate).
fn stale_port_reuses(records: &[Record], beside: &[Record], after_ms: f64) -> usize {
    let mut by_sent: Vec<(&Record, bool)> =
        records.iter().map(|r| (r, true)).chain(beside.iter().map(|r| (r, false))).collect();
    by_sent.sort_by(|a, b| a.0.sent_ms.total_cmp(&b.0.sent_ms));
    let mut unanswered = std::collections::HashSet::new();
    let mut reused = 0;
    for (r, counted) in by_sent {
        let Some(port) = r.local_port else { continue };
        if counted && r.kind.failed() && r.scheduled_ms > after_ms && unanswered.contains(&port) {
            reused += 1;
        }
        if matches!(r.kind, Kind::Timeout | Kind::Connect) {
            unanswered.insert(port);
        }
    }
    reused
}

/// Seconds below `min` Ready replicas, from the samples.
fn seconds_below(ready: &[(f64, usize)], min: usize) -> f64 {
    // A fold from +0.0: f64's `sum` starts at -0.0, shown as "-0 s".
    ready.windows(2).filter(|w| w[0].1 < min).map(|w| (w[1].0 - w[0].0) / 1000.0).fold(0.0, |a, b| a + b)
}

pub(crate) async fn node_loss(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = cx.deployment_label();
    let nodes = match &cx.nodes {
        Ok(nodes) => nodes.as_slice(),
        Err(why) => return r.skip(&object, "node loss", "a node the harness can stop", why),
    };
    // From rest: the budgets were measured at the documented replicas with
    // no pipeline run in flight. The check before (autoscaling's last
    // scenario) leaves the HPA above its minimum and runs holding memory: a
    // full nightly once killed a node beside them, and a pod there went
    // over its fitted 128Mi memory limit (OOMKilled).
    if !hpa_rest::record_rest(cx, r, &object, "kill").await {
        return;
    }
    // One node lost is one replica lost only where the pods are spread as
    // the anti-affinity places them; the checks before may have stacked them.
    let names: Vec<String> = nodes.iter().map(|(name, _)| name.clone()).collect();
    let respread = respread::respread(cx, &names).await;
    let Some(mut session) = Session::open(cx, r, &object, "node loss").await else { return };
    match respread {
        Ok(moved) if moved.is_empty() => {}
        Ok(moved) => session.mark(format!("re-spread before: {}", moved.join(", "))),
        Err(e) => session.mark(format!("not re-spread: {}", chain(&e))),
    }
    let (node, container) = match victim(cx, nodes).await {
        Ok(v) => v,
        Err(e) => {
            session.finish(cx).await;
            return r.record(&object, "node loss", "an agent hosting an app pod", chain(&e), false);
        }
    };
    // The kill ends the processes of the app pods on that node on purpose:
    // if the node is back before they are removed, kubelet restarts them
    // once (exit 255, Unknown), which `live-no-restarts` must not count.
    if let Ok(pods) = app_pods(cx).await {
        for pod in pods.iter().filter(|p| node_of(p) == Some(node.as_str())) {
            cx.restarts.on_purpose(pod.metadata.name.as_deref().unwrap_or_default());
        }
    }
    session.settle().await;
    session.mark(format!("kill {node}"));
    let killed_at = Instant::now();
    if let Err(e) = docker(&["kill", "--signal", "KILL", &container]).await {
        session.finish(cx).await;
        return r.record(&object, format!("kill {node}").as_str(), "killed", chain(&e), false);
    }
    let want = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
    let bound = cx.timeouts.node_loss;
    let not_ready = until(&format!("node {node} NotReady"), bound, || async {
        match node_ready(cx, &node).await {
            Some(false) => Poll::Done(killed_at.elapsed()),
            other => Poll::Pending(format!("Ready: {other:?}")),
        }
    })
    .await;
    if let Ok(after) = &not_ready {
        session.mark(format!("NotReady ({:.0} s)", after.as_secs_f64()));
    }
    let replaced = until(&format!("{want} Ready app pods off {node}"), bound, || async {
        match app_pods(cx).await {
            Ok(pods) => {
                let elsewhere = pods
                    .iter()
                    .filter(|p| node_of(p) != Some(node.as_str()))
                    .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                    .count();
                if elsewhere >= want {
                    Poll::Done(killed_at.elapsed())
                } else {
                    Poll::Pending(format!("{elsewhere} Ready off {node}"))
                }
            }
            Err(e) => Poll::failed(chain(&e), &e),
        }
    })
    .await;
    if let Ok(after) = &replaced {
        session.mark(format!("replaced ({:.0} s)", after.as_secs_f64()));
    }
    session.mark(format!("start {node}"));
    let started_at = Instant::now();
    let restarted = docker(&["start", &container]).await;
    let back = match restarted {
        Err(e) => Err(NodeLossError::Start(e)),
        Ok(_) => until(&format!("node {node} Ready again"), bound, || async {
            match node_ready(cx, &node).await {
                Some(true) => Poll::Done(started_at.elapsed()),
                other => Poll::Pending(format!("Ready: {other:?}")),
            }
        })
        .await
        .map_err(NodeLossError::Wait),
    };
    if let Ok(after) = &back {
        session.mark(format!("{node} Ready ({:.0} s)", after.as_secs_f64()));
    }
    session.settle().await;
    let ev = session.finish(cx).await;
    judge(r, &object, &node, &ev, (not_ready, replaced, back), cx);
    let title = format!("{}: {node} killed under load", cx.env);
    r.section(write_evidence(cx.report_dir, &format!("{}-node-loss", cx.env), &title, &ev));
}

type Waited = (Result<Duration, WaitError>, Result<Duration, WaitError>, Result<Duration, NodeLossError>);

fn judge(r: &mut Recorder, object: &str, node: &str, ev: &Evidence, waited: Waited, cx: &LiveContext<'_>) {
    let budget = cx.disruption.budgets.node_loss;
    let (not_ready, replaced, back) = waited;
    let secs = |d: &Duration| format!("{:.0} s", d.as_secs_f64());
    r.record(
        object,
        &format!("{node} marked NotReady after its kill"),
        "NotReady",
        not_ready.as_ref().map_or_else(|e| chain(e), |d| format!("after {}", secs(d))),
        not_ready.is_ok(),
    );
    let killed_ms = ev.phases.iter().find(|(_, label)| label.starts_with("kill ")).map_or(0.0, |(at, _)| *at);
    #[expect(clippy::cast_precision_loss, reason = "seconds")]
    let limit_ms = killed_ms + budget.failing_seconds as f64 * 1000.0;
    for (path, records) in [("through the ingress", &ev.ingress), ("to the Service from a pod", &ev.service)] {
        let s = Summary::of(records);
        let late = records.iter().filter(|r| r.kind.failed() && r.scheduled_ms > limit_ms).count();
        let found = match (late, stale_port_reuses(records, &ev.runs, limit_ms)) {
            (0, _) => s.to_string(),
            (late, 0) => format!("{s}; {late} failed later"),
            (late, stale) => format!(
                "{s}; {late} failed later, {stale} of them on the source port of an earlier unanswered attempt \
                 (a stale conntrack entry to the dead pod)"
            ),
        };
        r.record(
            object,
            &format!("requests {path} while {node} was lost (kill at {:.1} s)", killed_ms / 1000.0),
            format!("some sent, none failing later than {} s after the kill", budget.failing_seconds),
            found,
            s.sent > 0 && late == 0,
        );
    }
    // The runs the lost pods held are cut with them (their callers time
    // out); later runs may not be.
    let runs = RunTally::of(&ev.runs);
    let late = ev.runs.iter().filter(|r| RunOutcome::of(r) == RunOutcome::Cut && r.scheduled_ms > limit_ms).count();
    r.record(
        object,
        &format!("pipeline runs to the Service while {node} was lost"),
        format!("some completed, none cut that started later than {} s after the kill", budget.failing_seconds),
        if late > 0 { format!("{runs}; {late} cut later") } else { runs.to_string() },
        runs.completed > 0 && late == 0,
    );
    r.record(
        object,
        &format!("the lost pods replaced and Ready off {node}"),
        format!("within {} s of the kill", budget.replaced_seconds),
        replaced.as_ref().map_or_else(|e| chain(e), |d| format!("after {}", secs(d))),
        replaced.as_ref().is_ok_and(|d| d.as_secs() <= budget.replaced_seconds),
    );
    r.record(
        object,
        &format!("{node} Ready again once started"),
        format!("within {} s", budget.node_ready_seconds),
        back.as_ref().map_or_else(|e| chain(e), |d| format!("after {}", secs(d))),
        back.as_ref().is_ok_and(|d| d.as_secs() <= budget.node_ready_seconds),
    );
    let min = usize::try_from(cx.governance.pdb.min_available).unwrap_or(0);
    let lowest = ev.ready.iter().map(|(_, n)| *n).min();
    r.record(
        object,
        &format!("Ready replicas while {node} was lost ({} samples)", ev.ready.len()),
        format!(">= {min} (minAvailable)"),
        lowest.map_or_else(
            || "no sample".to_owned(),
            |n| format!("lowest {n}, below {min} for {:.0} s", seconds_below(&ev.ready, min)),
        ),
        lowest.is_some_and(|n| n >= min),
    );
}

#[cfg(test)]
mod tests {
    use super::{seconds_below, stale_port_reuses};
    use cbam_prober::{Kind, Record, Stream};

    fn request(at_ms: f64, kind: Kind, port: u16) -> Record {
        Record {
            seq: 0,
            scheduled_ms: at_ms,
            sent_ms: at_ms,
            latency_ms: 1.0,
            kind,
            status: None,
            pod: None,
            error: None,
            stream: Stream::Get,
            draining: false,
            local_port: Some(port),
        }
    }

    #[test]
    fn a_late_failure_on_a_port_that_went_unanswered_before_is_a_stale_reuse() {
        let records = [
            request(1_000.0, Kind::Timeout, 40_000),
            request(2_000.0, Kind::Connect, 40_002),
            request(3_000.0, Kind::Ok, 40_004),
            // Late: the first two ports come round again, and fail.
            request(60_000.0, Kind::Timeout, 40_000),
            request(61_000.0, Kind::Timeout, 40_002),
            // Late failures on a port that was answered, or never used.
            request(62_000.0, Kind::Timeout, 40_004),
            request(63_000.0, Kind::Reset, 40_006),
            // Late and answered: not a failure.
            request(64_000.0, Kind::Ok, 40_000),
        ];
        assert_eq!(stale_port_reuses(&records, &[], 50_000.0), 2);
        assert_eq!(stale_port_reuses(&records, &[], 70_000.0), 0, "nothing failed after the limit");
        // Out of order (records arrive as they complete): sorted by sending.
        let mut reversed = records.clone();
        reversed.reverse();
        assert_eq!(stale_port_reuses(&reversed, &[], 50_000.0), 2);
        // A pipeline run that went unanswered on 40_004 earlier: the same
        // prober, the same ports; the run itself is not counted.
        let runs = [request(2_500.0, Kind::Timeout, 40_004), request(65_000.0, Kind::Timeout, 40_002)];
        assert_eq!(stale_port_reuses(&records, &runs, 50_000.0), 3);
    }

    #[test]
    fn time_below_the_minimum_adds_up_between_samples() {
        let ready = [(0.0, 3), (1000.0, 1), (3500.0, 2), (4000.0, 1), (4500.0, 3)];
        assert!((seconds_below(&ready, 2) - 3.0).abs() < 1e-9);
        assert_eq!(seconds_below(&ready, 1), 0.0);
        assert_eq!(format!("{:.0}", seconds_below(&ready, 1)), "0", "never below: not \"-0\"");
    }
}
