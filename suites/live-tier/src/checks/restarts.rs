//! No workload container restarts during the live run. A liveness probe
//! that starts failing or an OOM kill goes unnoticed if only the checks'
//! own requests are looked at, so the app's pods are sampled after every
//! check (pods a drain or a scale-down removes later are still counted),
//! and the last check waits until every pod has been Ready for one full
//! liveness window (delay + period x threshold + timeout, read from the
//! live Deployment) before it judges. The restarts the run causes on
//! purpose (`live-unready-endpoints` ends one pod's process, nightly
//! `live-node-loss` kills a node with its pods) are allowed once per pod,
//! and those pods are not waited for.

use std::collections::BTreeSet;
use std::time::Duration;

use cbam_cluster::wait::{Poll, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use crate::app_pods::selector;
use crate::context::LiveContext;
use cbam_model::outcome::Recorder;

/// How long a container must run before a failing liveness probe has
/// restarted it: the probe's delay, period x failure threshold, timeout.
async fn liveness_window(cx: &LiveContext<'_>) -> Duration {
    let api: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let probe = api.get(&cx.workload.deployment).await.ok().and_then(|d| {
        let spec = d.spec?.template.spec?;
        spec.containers.into_iter().find(|c| c.name == cx.workload.container)?.liveness_probe
    });
    let seconds = probe.map_or(0, |p| {
        let period = p.period_seconds.unwrap_or(10);
        // One period more: the kubelet starts each probe worker at a random
        // point of its first period (a 2 s allowance missed a restart once,
        // on a loaded machine), plus two seconds to act on the last failure.
        p.initial_delay_seconds.unwrap_or(0)
            + period * (p.failure_threshold.unwrap_or(3) + 1)
            + p.timeout_seconds.unwrap_or(1)
            + 2
    });
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// How long the youngest pod's containers have been Ready (liveness runs
/// once the startup probe has passed); pods restarted on purpose aside.
fn youngest(pods: &[Pod], on_purpose: &BTreeSet<String>) -> Option<i64> {
    let now = Timestamp::now().as_second();
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !on_purpose.contains(p.metadata.name.as_deref().unwrap_or_default()))
        .map(|p| {
            let ready =
                p.status.iter().flat_map(|s| s.conditions.iter().flatten()).find(|c| c.type_ == "ContainersReady");
            match ready {
                Some(c) if c.status == "True" => c.last_transition_time.as_ref().map_or(0, |t| now - t.0.as_second()),
                _ => 0,
            }
        })
        .min()
}

pub(crate) async fn no_restarts(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = cx.deployment_label();
    let window = liveness_window(cx).await;
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let selector = match selector(cx).await {
        Ok(s) => s,
        Err(e) => return r.record(&object, "restarts", "the Deployment's pods", e, false),
    };
    let on_purpose = cx.restarts.on_purpose_pods();
    let lived = until(
        &format!("every app pod Ready for {} s (a liveness window)", window.as_secs()),
        window + cx.timeouts.rollout,
        || async {
            match pods.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => {
                    cx.restarts.note(&list.items);
                    if !cx.restarts.unexpected().1.is_empty() {
                        // Already a failure: no need to wait out the window.
                        return Poll::Done(());
                    }
                    match youngest(&list.items, &on_purpose) {
                        Some(age) if age >= i64::try_from(window.as_secs()).unwrap_or(i64::MAX) => Poll::Done(()),
                        Some(age) => Poll::Pending(format!("the youngest has run {age} s")),
                        None => Poll::Pending("no running app container".into()),
                    }
                }
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        },
    )
    .await;
    if let Err(e) = lived {
        return r.record(&object, "containers observed for a liveness window", "all", e.to_string(), false);
    }
    let (containers, unexpected) = cx.restarts.unexpected();
    r.record(
        &object,
        &format!("container restarts during the run ({containers} containers seen)"),
        "none (one where the run ends the process on purpose: live-unready-endpoints' pod, live-node-loss's lost pods)",
        if unexpected.is_empty() { "none".to_owned() } else { unexpected.join("; ") },
        containers > 0 && unexpected.is_empty(),
    );
}
