//! What a row of the live check table (`LIVE_CHECKS` in `checks/mod.rs`) says:
//! its scope, its role for the others, its place in the run order, and the
//! function that runs it.

use std::future::Future;
use std::pin::Pin;

use crate::context::LiveContext;
use cbam_model::outcome::Recorder;

/// Which environments a check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every environment.
    Every,
    /// Environments whose fixture carries governance (HPA, PDB, quota, limit range).
    Governed,
}

/// What a check is to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The rollout: when it fails, every `NeedsRollout` check is not verified.
    Rollout,
    /// Runs after a failed rollout too (what exists is still worth seeing).
    Independent,
    /// Needs a rolled-out Deployment (pods to talk to).
    NeedsRollout,
}

/// Where a check may run; the table's order is the run order, and a test
/// holds the table to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// First: everything else needs what it establishes.
    First,
    /// Anywhere after the first.
    Free,
    /// After each of these checks (they must come earlier in the table).
    After(&'static [&'static str]),
    /// Last: it judges the whole run.
    Last,
}

/// What a check needs of a cluster beyond nodes Ready. A cluster the harness
/// creates has it all (its readiness gate); on an existing cluster the
/// preflight (`run/preflight.rs`) looks for each before anything is applied,
/// and a check whose need is missing is not verified, with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// An ingress controller answering, of the overlays' IngressClass.
    Ingress,
    /// The resource metrics API (metrics.k8s.io), which the HPA's CPU reads.
    ResourceMetrics,
    /// custom.metrics.k8s.io, which the HPA's pipeline metric reads.
    CustomMetrics,
    /// A default StorageClass (the PVCs bind through it).
    DefaultStorage,
    /// The right to cordon nodes and evict pods.
    Eviction,
    /// The harness's tool image runs on the nodes.
    ToolImage,
}

impl Need {
    pub fn describe(self) -> &'static str {
        match self {
            Need::Ingress => "an ingress controller of the overlays' IngressClass, answering",
            Need::ResourceMetrics => "the resource metrics API (v1beta1.metrics.k8s.io) available",
            Need::CustomMetrics => "the custom metrics API (v1beta1.custom.metrics.k8s.io) available",
            Need::DefaultStorage => "a default StorageClass",
            Need::Eviction => "the right to cordon nodes and evict pods",
            Need::ToolImage => "the harness's tool image running on the nodes",
        }
    }
}

/// A check's run: it records its facts into the recorder.
pub(crate) type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;
pub(crate) type CheckRun = for<'a, 'b> fn(&'a LiveContext<'b>, &'a mut Recorder) -> CheckFuture<'a>;

#[derive(Debug, Clone, Copy)]
pub struct LiveCheck {
    pub id: &'static str,
    /// What it proves (the README's table).
    pub about: &'static str,
    pub scope: Scope,
    pub role: Role,
    pub order: Order,
    /// Runs only with `--profile nightly` (in the quick profile it is not
    /// asked for, like a governed check in an ungoverned environment).
    pub nightly_only: bool,
    /// What it needs of the cluster (the preflight's rows).
    pub needs: &'static [Need],
    pub(crate) run: CheckRun,
}
