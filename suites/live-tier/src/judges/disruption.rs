//! Judges a disruption under load (a rollout, a drain, a node lost): what
//! the two probers and the Ready sampler saw, against the budgets of
//! fixtures/disruption.yaml. Pure: the evidence is data.

use cbam_model::fixtures::Budget;
use cbam_model::outcome::Recorder;
use cbam_prober::runs::RunTally;
use cbam_prober::summary::Summary;
use cbam_prober::{Record, Usage};

/// What a load session saw, in milliseconds since it started.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    pub(crate) ingress: Vec<Record>,
    pub(crate) service: Vec<Record>,
    /// Pipeline runs to the Service, each answered when it was over.
    pub(crate) runs: Vec<Record>,
    pub(crate) ready: Vec<(f64, usize)>,
    pub(crate) phases: Vec<(f64, String)>,
    /// What the in-cluster prober said besides its records.
    pub(crate) said: String,
    /// What the in-cluster prober cost (its share of the machine).
    pub(crate) prober_usage: Option<Usage>,
}

/// The facts: each path answered within its budget, Ready replicas held.
pub(crate) fn judge(r: &mut Recorder, object: &str, what: &str, ev: &Evidence, budget: Budget, min_ready: usize) {
    let paths = [("through the ingress", &ev.ingress), ("to the Service from a pod", &ev.service)];
    for (path, records) in paths {
        let s = Summary::of(records);
        let extra = if records.is_empty() && !ev.said.is_empty() { format!(" ({})", ev.said) } else { String::new() };
        r.record(
            object,
            &format!("requests {path} during the {what}"),
            format!("some sent, at most {} failed", budget.failed),
            format!("{s}{extra}"),
            s.sent > 0 && s.failed <= budget.failed,
        );
        r.record(
            object,
            &format!("p99 latency {path} during the {what}"),
            format!("<= {} ms", budget.p99_ms),
            s.latency_p99_ms.map_or_else(|| "no request".to_owned(), |p| format!("{p:.0} ms")),
            s.latency_p99_ms.is_some_and(|p| p <= budget.p99_ms),
        );
    }
    let runs = RunTally::of(&ev.runs);
    r.record(
        object,
        &format!("pipeline runs to the Service during the {what}"),
        format!("some completed; each completed or refused before starting, at most {} cut", budget.runs_cut),
        runs.to_string(),
        runs.completed > 0 && runs.cut <= budget.runs_cut,
    );
    let low = ev.ready.iter().map(|(_, n)| *n).min();
    r.record(
        object,
        &format!("Ready replicas during the {what} ({} samples)", ev.ready.len()),
        format!(">= {min_ready}"),
        low.map_or_else(|| "no sample".to_owned(), |n| format!("lowest {n}")),
        low.is_some_and(|n| n >= min_ready),
    );
}
