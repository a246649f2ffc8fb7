//! Where the app's replicas run at rest, against the documented preferred
//! anti-affinity (`fixtures/workload.yaml` `anti_affinity_topology_key`):
//! no topology domain (a node, for `kubernetes.io/hostname`) runs more
//! replicas than spreading them evenly over the domains the pods may be
//! scheduled to requires. A soft rule, so "while nodes allow it": with as
//! many schedulable domains as replicas, one each.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

/// Whether TOLERATIONS let a pod onto a node with TAINT.
fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| {
        let key = match t.operator.as_deref() {
            Some("Exists") => t.key.as_deref().is_none_or(|k| k.is_empty() || k == taint.key),
            _ => t.key.as_deref() == Some(taint.key.as_str()) && t.value == taint.value,
        };
        key && t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect)
    })
}

/// Whether a pod with TOLERATIONS may be scheduled onto NODE now: Ready,
/// not cordoned, every NoSchedule and NoExecute taint tolerated.
pub(crate) fn schedulable(node: &Node, tolerations: &[Toleration]) -> bool {
    let spec = node.spec.clone().unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ready
        && !spec.unschedulable.unwrap_or(false)
        && spec.taints.unwrap_or_default().iter().all(|t| t.effect == "PreferNoSchedule" || tolerated(t, tolerations))
}

/// The judgement of one placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spread {
    /// The most replicas even spreading leaves on one domain.
    pub(crate) allowed: usize,
    /// The most replicas found on one domain, and which.
    pub(crate) most: usize,
    pub(crate) domain: String,
}

impl Spread {
    pub(crate) fn holds(&self) -> bool {
        self.most <= self.allowed
    }
}

/// REPLICAS: the domain (topology value) each Ready replica runs in;
/// DOMAINS: how many schedulable domains there are.
pub(crate) fn judge(replicas: &[String], domains: usize) -> Spread {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for domain in replicas {
        *per.entry(domain.as_str()).or_default() += 1;
    }
    let (domain, most) = per.iter().max_by_key(|(_, n)| **n).map_or(("none", 0), |(d, n)| (*d, *n));
    Spread { allowed: replicas.len().div_ceil(domains.max(1)), most, domain: domain.to_owned() }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    use super::*;

    fn names(domains: &[&str]) -> Vec<String> {
        domains.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn one_replica_per_node_while_there_are_enough_nodes() {
        assert!(judge(&names(&["a", "b", "c"]), 3).holds());
        let stacked = judge(&names(&["a", "a", "b"]), 3);
        assert_eq!((stacked.allowed, stacked.most, stacked.domain.as_str()), (1, 2, "a"));
        assert!(!stacked.holds());
    }

    #[test]
    fn more_replicas_than_nodes_spread_evenly() {
        assert!(judge(&names(&["a", "a", "b", "b", "c"]), 3).holds());
        assert!(!judge(&names(&["a", "a", "a", "b", "c"]), 3).holds());
        // Fewer schedulable domains than the pods use (one cordoned since).
        assert!(judge(&names(&["a", "b", "c"]), 2).holds());
    }

    fn node(ready: bool, unschedulable: bool, taints: Vec<Taint>) -> Node {
        Node {
            spec: Some(NodeSpec { unschedulable: Some(unschedulable), taints: Some(taints), ..NodeSpec::default() }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), ..Taint::default() }
    }

    #[test]
    fn a_node_counts_when_a_pod_may_land_there() {
        let control_plane = taint("node-role.kubernetes.io/control-plane", "NoSchedule");
        assert!(schedulable(&node(true, false, vec![]), &[]));
        assert!(!schedulable(&node(false, false, vec![]), &[]));
        assert!(!schedulable(&node(true, true, vec![]), &[]));
        assert!(!schedulable(&node(true, false, vec![control_plane.clone()]), &[]));
        assert!(schedulable(&node(true, false, vec![taint("x", "PreferNoSchedule")]), &[]));
        let exists = Toleration {
            key: Some("node-role.kubernetes.io/control-plane".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        };
        assert!(schedulable(&node(true, false, vec![control_plane]), &[exists]));
    }
}
