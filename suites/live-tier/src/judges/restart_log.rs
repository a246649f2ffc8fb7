//! The restarts of the app's containers seen during a run, sampled after
//! every check (a pod a drain or a scale-down removes later still counts),
//! and the ones the run causes on purpose (allowed once per pod).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

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

    pub(crate) fn note(&self, pods: &[Pod]) {
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

    /// The pods the run restarted on purpose.
    pub(crate) fn on_purpose_pods(&self) -> BTreeSet<String> {
        self.on_purpose.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// One line per container that restarted more than allowed.
    pub(crate) fn unexpected(&self) -> (usize, Vec<String>) {
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
