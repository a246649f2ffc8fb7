//! What one run established, as plain data: the static tier's result per
//! environment (with the typed objects the live tier applies), a baseline
//! release, the live tier's result, and the catalog of checks the report
//! describes. Produced by the tiers, read by the report; no behaviour here.

use std::path::PathBuf;
use std::time::Duration;

use crate::environment::Env;
use crate::fixtures::Expectations;
use crate::manifest::Object;
use crate::outcome::{Outcome, Status};

/// The static tier's result for one environment.
#[derive(Debug)]
pub struct EnvResult {
    pub env: Env,
    pub outcomes: Vec<Outcome>,
    pub rendered: String,
    /// The overlay's objects, typed (what the live tier applies).
    pub objects: Vec<Object>,
    pub object_count: usize,
    pub render_time: Duration,
    /// Predicted HPA timelines (scale-up, scale-down), where an HPA governs the environment.
    pub hpa_timeline: Option<(String, String)>,
}

#[derive(Debug)]
pub struct StaticRun {
    pub results: Vec<EnvResult>,
    /// infra/{resourcequota,limitrange,pdb,hpa}.yaml, typed, in apply order.
    pub governance: Vec<Object>,
    pub expectations: Expectations,
    pub kustomize: String,
    pub elapsed: Duration,
}

impl StaticRun {
    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.results.iter().flat_map(|r| r.outcomes.iter())
    }

    pub fn failed(&self) -> usize {
        self.outcomes().filter(|o| o.status == Status::Fail).count()
    }

    /// The ids of the checks that failed on `env`, in report order.
    pub fn failed_checks(&self, env: Env) -> Vec<&'static str> {
        let mut ids: Vec<&'static str> =
            self.outcomes().filter(|o| o.env == env && o.status == Status::Fail).map(|o| o.check).collect();
        ids.dedup();
        ids
    }
}

/// A previous release's overlays (`--baseline DIR`), rendered for the live
/// tier's rollout from it and back; the static tier does not judge them.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub dir: PathBuf,
    pub objects: std::collections::BTreeMap<Env, Vec<Object>>,
}

/// What the live tier established on one cluster.
#[derive(Debug, Default)]
pub struct LiveRun {
    pub outcomes: Vec<Outcome>,
    /// (phase, seconds)
    pub timings: Vec<(String, f64)>,
    /// Facts the report states (scale factor, versions, TLS issuer note).
    pub notes: Vec<String>,
    /// Markdown sections for the report (autoscaling step tables).
    pub sections: Vec<String>,
    /// What the run could not undo on the cluster (a namespace still
    /// terminating): reported beside the verdict, kept in the journal.
    pub cleanup: Vec<String>,
}

/// One check as the report describes it (a SARIF rule): its id and what it
/// proves, from the static and live check tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub about: &'static str,
}
