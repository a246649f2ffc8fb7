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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cbam_cluster::wait::{Poll, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use crate::live::context::LiveContext;
use crate::live::workload::selector;
use crate::outcome::Recorder;

/// The most restarts seen of one container, and why it last ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Restarted {
    count: i32,
    last: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RestartLog {
    /// `pod/container` -> restarts.
    seen: Arc<Mutex<BTreeMap<String, Restarted>>>,
    /// Pods the run restarts once on purpose.
    on_purpose: Arc<Mutex<BTreeSet<String>>>,
}

fn last_termination(status: &ContainerStatus) -> String {
    let Some(t) = status.last_state.as_ref().and_then(|s| s.terminated.as_ref()) else {
        return "no termination recorded".into();
    };
    format!("{} (exit {})", t.reason.clone().unwrap_or_else(|| "unknown".into()), t.exit_code)
}

impl RestartLog {
    /// The run is about to restart `pod`'s process once.
    pub(crate) fn on_purpose(&self, pod: &str) {
        if let Ok(mut set) = self.on_purpose.lock() {
            set.insert(pod.to_owned());
        }
    }

    fn note(&self, pods: &[Pod]) {
        let Ok(mut seen) = self.seen.lock() else { return };
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            for status in pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()) {
                let entry = seen
                    .entry(format!("{name}/{}", status.name))
                    .or_insert(Restarted { count: 0, last: String::new() });
                if status.restart_count >= entry.count {
                    *entry = Restarted { count: status.restart_count, last: last_termination(status) };
                }
            }
        }
    }

    /// Records the restart counts of the app's pods now.
    pub(crate) async fn sample(&self, cx: &LiveContext<'_>) {
        let Ok(selector) = selector(cx).await else { return };
        let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            self.note(&list.items);
        }
    }

    /// One line per container that restarted more than allowed.
    fn unexpected(&self) -> (usize, Vec<String>) {
        let on_purpose = self.on_purpose.lock().map(|s| s.clone()).unwrap_or_default();
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let lines = seen
            .iter()
            .filter(|(key, r)| {
                let pod = key.split_once('/').map_or(key.as_str(), |(p, _)| p);
                r.count > i32::from(on_purpose.contains(pod))
            })
            .map(|(key, r)| format!("{key} restarted {} times, last {}", r.count, r.last))
            .collect();
        (seen.len(), lines)
    }
}

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
    let on_purpose = cx.restarts.on_purpose.lock().map(|s| s.clone()).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, restarts: i32, reason: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"containerStatuses": [{
                "name": "api", "image": "x", "imageID": "", "ready": true, "restartCount": restarts,
                "lastState": {"terminated": {"exitCode": 137, "reason": reason}}
            }]}
        }))
        .expect("pod")
    }

    #[test]
    fn names_each_unexpected_restart_with_count_and_reason_and_allows_the_one_on_purpose() {
        let log = RestartLog::default();
        log.on_purpose("a");
        log.note(&[pod("a", 1, "Completed"), pod("b", 0, "")]);
        assert_eq!(log.unexpected(), (2, vec![]));
        log.note(&[pod("b", 2, "OOMKilled")]);
        // A later sample of a pod that is gone does not erase what was seen.
        log.note(&[pod("a", 1, "Completed")]);
        assert_eq!(log.unexpected(), (2, vec!["b/api restarted 2 times, last OOMKilled (exit 137)".to_owned()]));
    }
}
