//! The live checks, as a table: one row each, in run order (`catalog.rs`
//! says what each field means). The run walks `LIVE_CHECKS`; `--skip-check`,
//! tests/live.rs, the README's table (tests/docs.rs) and the report read it.
//! A new live check is its module here, its row below and its mutation
//! (docs/adding-a-check.md). A check imports traffic, actions and judges,
//! never another check.

mod admission;
mod autoscaling;
mod cluster_upgrade;
mod drain;
mod drain_under_load;
mod edge;
mod node_loss;
mod pod_security;
mod restarts;
mod rollout;
mod rollout_under_load;
mod runtime_security;
mod unready;
mod workload;

use crate::catalog::{LiveCheck, Need, Order, Role, Scope};

/// The checks that send requests through the ingress from this host: the
/// rate limit's burst spends that client's budget for a minute, which would
/// refuse theirs.
const INGRESS_TRAFFIC: &[&str] = &[
    "live-tls",
    "live-https-redirect",
    "live-security-headers",
    "live-cors",
    "live-api-docs",
    "live-rollout-under-load",
    "live-drain-under-load",
    "live-node-loss",
    "live-autoscaling",
    "live-cluster-upgrade",
];

/// Every live check, in run order (`catalog.rs` says what each field means).
pub const LIVE_CHECKS: &[LiveCheck] = &[
    LiveCheck {
        id: "live-rollout",
        about: "the Deployment rolls out to the documented replicas",
        scope: Scope::Every,
        role: Role::Rollout,
        order: Order::First,
        nightly_only: false,
        needs: &[Need::DefaultStorage],
        run: |cx, r| Box::pin(rollout::rollout(cx, r)),
    },
    LiveCheck {
        id: "live-inventory",
        about: "the documented objects exist (and PVCs are Bound)",
        scope: Scope::Every,
        role: Role::Independent,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::DefaultStorage],
        run: |cx, r| Box::pin(workload::inventory(cx, r)),
    },
    LiveCheck {
        id: "live-replicas",
        about: "documented replicas Ready at rest, spread across nodes",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[],
        run: |cx, r| Box::pin(workload::replicas(cx, r)),
    },
    LiveCheck {
        id: "live-probes",
        about: "every pod answers /health, /health/ready and exposes the pipeline metric",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[],
        run: |cx, r| Box::pin(workload::probes(cx, r)),
    },
    LiveCheck {
        id: "live-runtime-security",
        about: "the app process as the kernel runs it: identity, capabilities, seccomp, read-only root",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::ToolImage],
        run: |cx, r| Box::pin(runtime_security::runtime_security(cx, r)),
    },
    LiveCheck {
        id: "live-pod-security-enforced",
        about: "Pod Security admission refuses pods breaking restricted",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[],
        run: |cx, r| Box::pin(pod_security::pod_security_enforced(cx, r)),
    },
    LiveCheck {
        id: "live-unready-endpoints",
        about: "a pod made unready leaves the Service endpoints, and returns once Ready",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::ToolImage],
        run: |cx, r| Box::pin(unready::unready_leaves_endpoints(cx, r)),
    },
    LiveCheck {
        id: "live-tls",
        about: "HTTPS with SNI, certificate chained to the run's CA, TLS >= 1.2",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress],
        run: |cx, r| Box::pin(edge::tls(cx, r)),
    },
    LiveCheck {
        id: "live-https-redirect",
        about: "HTTP is redirected to HTTPS",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress],
        run: |cx, r| Box::pin(edge::https_redirect(cx, r)),
    },
    LiveCheck {
        id: "live-security-headers",
        about: "the documented security headers on responses",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress],
        run: |cx, r| Box::pin(edge::security_headers(cx, r)),
    },
    LiveCheck {
        id: "live-cors",
        about: "CORS per environment policy, preflight included",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress],
        run: |cx, r| Box::pin(edge::cors(cx, r)),
    },
    LiveCheck {
        id: "live-api-docs",
        about: "API docs reachable only where enabled",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress],
        run: |cx, r| Box::pin(edge::api_docs(cx, r)),
    },
    LiveCheck {
        id: "live-limit-range-enforced",
        about: "a container over the LimitRange maximum is rejected",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[],
        run: |cx, r| Box::pin(admission::limit_range_enforced(cx, r)),
    },
    LiveCheck {
        id: "live-quota-enforced",
        about: "a pod over the ResourceQuota is rejected",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[],
        run: |cx, r| Box::pin(admission::quota_enforced(cx, r)),
    },
    LiveCheck {
        id: "live-pdb-drain",
        about: "a node drain keeps minAvailable; a breaking eviction gets 429",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Eviction],
        run: |cx, r| Box::pin(drain::pdb_during_drain(cx, r)),
    },
    LiveCheck {
        id: "live-rollout-under-load",
        about: "rolling update under load: no failed request or cut run, Ready never below the documented count",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress, Need::ToolImage],
        run: |cx, r| Box::pin(rollout_under_load::rollout_under_load(cx, r)),
    },
    LiveCheck {
        id: "live-drain-under-load",
        about: "node drain under load: no failed request or cut run, minAvailable Ready throughout",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress, Need::Eviction, Need::ToolImage],
        run: |cx, r| Box::pin(drain_under_load::drain_under_load(cx, r)),
    },
    LiveCheck {
        id: "live-autoscaling",
        about: "under generated load the HPA follows the documented timeline to its maximum",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress, Need::ResourceMetrics, Need::CustomMetrics],
        run: |cx, r| Box::pin(autoscaling::autoscaling(cx, r)),
    },
    LiveCheck {
        id: "live-node-loss",
        about: "a node killed under load (nightly): failures, replacement, return in budget",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        // After autoscaling: a killed node's addons and routes recover
        // while the later checks run, never under the autoscaling judges.
        order: Order::After(&["live-autoscaling"]),
        nightly_only: true,
        needs: &[Need::Ingress, Need::ToolImage],
        run: |cx, r| Box::pin(node_loss::node_loss(cx, r)),
    },
    LiveCheck {
        id: "live-cluster-upgrade",
        about: "each worker upgraded under load, at rest, then scaled (nightly): none failed or cut",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        // After the other disruptions: its new nodes change where pods run.
        order: Order::After(&["live-autoscaling", "live-node-loss"]),
        nightly_only: true,
        needs: &[Need::Ingress, Need::Eviction, Need::ToolImage],
        run: |cx, r| Box::pin(cluster_upgrade::cluster_upgrade(cx, r)),
    },
    LiveCheck {
        id: "live-rate-limit",
        about: "the request after 100 in a minute gets 429",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::After(INGRESS_TRAFFIC),
        nightly_only: false,
        needs: &[Need::Ingress],
        run: |cx, r| Box::pin(edge::rate_limit(cx, r)),
    },
    LiveCheck {
        id: "live-no-restarts",
        about: "no workload container restarts during the run",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Last,
        nightly_only: false,
        needs: &[],
        run: |cx, r| Box::pin(restarts::no_restarts(cx, r)),
    },
];

/// The check with this id.
pub fn find(id: &str) -> Option<&'static LiveCheck> {
    LIVE_CHECKS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{LIVE_CHECKS, find};
    use crate::catalog::{Order, Role};

    #[test]
    fn the_documented_example_is_a_row_apart() {
        let row = super::adding_a_check_example::ROW;
        assert!(row.id.starts_with("live-") && find(row.id).is_none());
    }

    #[test]
    fn ids_are_unique_and_live() {
        let ids: BTreeSet<&str> = LIVE_CHECKS.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), LIVE_CHECKS.len(), "a live check id appears twice");
        assert!(LIVE_CHECKS.iter().all(|c| c.id.starts_with("live-")), "the report tells the tiers apart by prefix");
    }

    #[test]
    fn the_table_keeps_its_ordering_rules() {
        let last = LIVE_CHECKS.len() - 1;
        for (k, check) in LIVE_CHECKS.iter().enumerate() {
            match check.order {
                Order::First => assert_eq!(k, 0, "{} must be first", check.id),
                Order::Last => assert_eq!(k, last, "{} must be last", check.id),
                Order::Free => assert!(k > 0, "{} is not the first", check.id),
                Order::After(before) => {
                    for id in before {
                        let position = LIVE_CHECKS.iter().position(|c| c.id == *id);
                        assert!(position.is_some_and(|p| p < k), "{} must run after {id}", check.id);
                    }
                }
            }
        }
    }

    #[test]
    fn exactly_one_rollout_and_it_runs_first() {
        let rollouts: Vec<&str> = LIVE_CHECKS.iter().filter(|c| c.role == Role::Rollout).map(|c| c.id).collect();
        assert_eq!(rollouts, [LIVE_CHECKS[0].id]);
        assert!(find("live-rollout").is_some() && find("live-nothing").is_none());
    }
}

/// docs/adding-a-check.md's example, compiled as the doc shows it.
#[cfg(test)]
#[path = "../../../../docs/examples/live_check.rs"]
mod adding_a_check_example;
