//! The live tier: each overlay applied to a real cluster and its documented
//! behaviour observed (probes, ingress TLS/CORS/headers/docs/rate limit,
//! governance enforcement, the PDB during a drain, autoscaling under load).
//!
//! The live checks are declared below like the static ones (`checks.rs`):
//! one row each, in run order. The run walks `LIVE_CHECKS`; `--skip-check`,
//! tests/live.rs, the README's table (tests/docs.rs) and the report read
//! it. A new live check is its module, its `mod` line and its row here,
//! and its mutation (docs/adding-a-check.md).

mod admission;
mod apply;
mod autoscaling;
mod catalog;
mod cleanup;
mod context;
mod diagnostics;
mod disruption_plot;
mod drain;
mod drain_under_load;
mod edge;
mod fit;
mod hpa_reading;
pub mod journal;
mod load;
mod metrics_pipeline;
mod node_loss;
mod phases;
mod pod_security;
mod prober_pod;
mod rate_bucket;
mod ready_sampler;
mod restarts;
mod rollout;
mod rollout_under_load;
mod run;
mod run_ca;
mod runtime_security;
mod scale_down;
mod scaling_timeline;
mod target_probe;
mod timeline_plot;
mod tls_versions;
mod tool_container;
mod under_load;
mod unready;
mod workload;

pub use autoscaling::Profile;
pub use catalog::{LiveCheck, Order, Role, Scope, find};
pub use cleanup::cleanup_only;
pub use run::{LiveError, LiveOptions, LiveRun, Provider, Target, run, run_on};

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
        run: |cx, r| Box::pin(rollout::rollout(cx, r)),
    },
    LiveCheck {
        id: "live-inventory",
        about: "the documented objects exist (and PVCs are Bound)",
        scope: Scope::Every,
        role: Role::Independent,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(workload::inventory(cx, r)),
    },
    LiveCheck {
        id: "live-replicas",
        about: "documented replicas Ready at rest",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(workload::replicas(cx, r)),
    },
    LiveCheck {
        id: "live-probes",
        about: "every pod answers /health, /health/ready and exposes the pipeline metric",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(workload::probes(cx, r)),
    },
    LiveCheck {
        id: "live-runtime-security",
        about: "the app process as the kernel runs it: identity, capabilities, seccomp, read-only root",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(runtime_security::runtime_security(cx, r)),
    },
    LiveCheck {
        id: "live-pod-security-enforced",
        about: "Pod Security admission refuses pods breaking restricted",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(pod_security::pod_security_enforced(cx, r)),
    },
    LiveCheck {
        id: "live-unready-endpoints",
        about: "a pod made unready leaves the Service endpoints, and returns once Ready",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(unready::unready_leaves_endpoints(cx, r)),
    },
    LiveCheck {
        id: "live-tls",
        about: "HTTPS with SNI, certificate chained to the run's CA, TLS >= 1.2",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(edge::tls(cx, r)),
    },
    LiveCheck {
        id: "live-https-redirect",
        about: "HTTP is redirected to HTTPS",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(edge::https_redirect(cx, r)),
    },
    LiveCheck {
        id: "live-security-headers",
        about: "the documented security headers on responses",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(edge::security_headers(cx, r)),
    },
    LiveCheck {
        id: "live-cors",
        about: "CORS per environment policy, preflight included",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(edge::cors(cx, r)),
    },
    LiveCheck {
        id: "live-api-docs",
        about: "API docs reachable only where enabled",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(edge::api_docs(cx, r)),
    },
    LiveCheck {
        id: "live-limit-range-enforced",
        about: "a container over the LimitRange maximum is rejected",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(admission::limit_range_enforced(cx, r)),
    },
    LiveCheck {
        id: "live-quota-enforced",
        about: "a pod over the ResourceQuota is rejected",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(admission::quota_enforced(cx, r)),
    },
    LiveCheck {
        id: "live-pdb-drain",
        about: "a node drain keeps minAvailable; a breaking eviction gets 429",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(drain::pdb_during_drain(cx, r)),
    },
    LiveCheck {
        id: "live-rollout-under-load",
        about: "rolling update under load: no failed request or cut run, Ready never below the documented count",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(rollout_under_load::rollout_under_load(cx, r)),
    },
    LiveCheck {
        id: "live-drain-under-load",
        about: "node drain under load: no failed request or cut run, minAvailable Ready throughout",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        run: |cx, r| Box::pin(drain_under_load::drain_under_load(cx, r)),
    },
    LiveCheck {
        id: "live-autoscaling",
        about: "under generated load the HPA follows the documented timeline to its maximum",
        scope: Scope::Governed,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
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
        run: |cx, r| Box::pin(node_loss::node_loss(cx, r)),
    },
    LiveCheck {
        id: "live-rate-limit",
        about: "the request after 100 in a minute gets 429",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::After(INGRESS_TRAFFIC),
        nightly_only: false,
        run: |cx, r| Box::pin(edge::rate_limit(cx, r)),
    },
    LiveCheck {
        id: "live-no-restarts",
        about: "no workload container restarts during the run",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Last,
        nightly_only: false,
        run: |cx, r| Box::pin(restarts::no_restarts(cx, r)),
    },
];
