//! Judges a disruption under load (a rollout, a drain, a node lost): what
//! the two probers and the Ready sampler saw, against the budgets of
//! fixtures/disruption.yaml. Pure: the evidence is data.

use cbam_model::fixtures::Budget;
use cbam_model::outcome::Recorder;
use cbam_prober::runs::RunTally;
use cbam_prober::summary::Summary;
use cbam_prober::{Record, Usage};

/// What a load session saw, in milliseconds since it started.
/// Ready app pods on each node at one instant (nodes with none left out).
pub(crate) type PerNode = std::collections::BTreeMap<String, usize>;

#[derive(Debug, Default)]
pub(crate) struct Evidence {
    pub(crate) ingress: Vec<Record>,
    pub(crate) service: Vec<Record>,
    /// Pipeline runs to the Service, each answered when it was over.
    pub(crate) runs: Vec<Record>,
    /// Runs of the documented held length sent to pods about to be stopped.
    pub(crate) held: Vec<Record>,
    pub(crate) ready: Vec<(f64, usize)>,
    /// The same samples per node (where the replicas were).
    pub(crate) ready_by_node: Vec<(f64, PerNode)>,
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
    if !ev.held.is_empty() {
        let unfinished: Vec<String> = ev
            .held
            .iter()
            .filter(|run| run.status != Some(200))
            .map(|run| {
                let pod = run.pod.as_deref().unwrap_or("?");
                match (run.status, &run.error) {
                    (Some(status), _) => format!("{pod}: HTTP {status} after {:.1} s", run.latency_ms / 1000.0),
                    (None, Some(e)) => format!("{pod}: {e} after {:.1} s", run.latency_ms / 1000.0),
                    (None, None) => format!("{pod}: no answer"),
                }
            })
            .collect();
        let finished = ev.held.len() - unfinished.len();
        r.record(
            object,
            &format!("runs held by the pods stopped in the {what}, started just before their stop"),
            "each completed (200) within the shutdown timeout and the grace period",
            if unfinished.is_empty() {
                format!("{finished} of {} completed", ev.held.len())
            } else {
                format!("{finished} of {} completed; {}", ev.held.len(), unfinished.join("; "))
            },
            unfinished.is_empty(),
        );
    }
    let (during, before) = ready_window(ev);
    let low = during.iter().min().copied();
    // A dip while the load only warmed up is shown, not judged: the
    // disruption is judged from the state it started in.
    let earlier = before.filter(|b| *b < min_ready).map(|b| format!(" ({b} before the {what} began)"));
    r.record(
        object,
        &format!("Ready replicas during the {what} ({} samples)", during.len()),
        format!(">= {min_ready}"),
        low.map_or_else(|| "no sample".to_owned(), |n| format!("lowest {n}{}", earlier.unwrap_or_default())),
        low.is_some_and(|n| n >= min_ready),
    );
}

/// The Ready counts that judge the disruption: the last sample before its
/// first phase after the load's start (the state it began in) and every one
/// after; and the lowest count before that, if any. Without a phase, all.
fn ready_window(ev: &Evidence) -> (Vec<usize>, Option<usize>) {
    let Some(start) = ev.phases.get(1).map(|(at, _)| *at) else {
        return (ev.ready.iter().map(|(_, n)| *n).collect(), None);
    };
    let first_after = ev.ready.iter().position(|(at, _)| *at >= start).unwrap_or(ev.ready.len());
    let from = first_after.saturating_sub(1);
    let during = ev.ready[from..].iter().map(|(_, n)| *n).collect();
    let before = ev.ready[..from].iter().map(|(_, n)| *n).min();
    (during, before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbam_model::environment::Env;
    use cbam_model::outcome::Status;
    use cbam_prober::{Kind, Stream};

    fn held(pod: &str, status: Option<u16>, error: Option<&str>) -> Record {
        Record {
            seq: 0,
            scheduled_ms: 0.0,
            sent_ms: 0.0,
            latency_ms: 12_000.0,
            kind: status.map_or(Kind::Reset, Kind::of_status),
            status,
            pod: Some(pod.to_owned()),
            error: error.map(str::to_owned),
            stream: Stream::Run,
            draining: true,
            local_port: None,
        }
    }

    fn held_fact(ev: &Evidence) -> (Status, String) {
        let mut r = Recorder::new(Env::new("production").expect("a name"), "live-drain-under-load");
        judge(&mut r, "Deployment x/y", "drain", ev, Budget { failed: 0, p99_ms: 1800.0, runs_cut: 0 }, 2);
        let fact = r.outcomes.iter().find(|o| o.subject.starts_with("runs held")).expect("a held-run fact");
        (fact.status, fact.found.clone())
    }

    #[test]
    fn a_held_run_must_complete() {
        let ev = Evidence { held: vec![held("a", Some(200), None), held("b", Some(200), None)], ..Evidence::default() };
        assert_eq!(held_fact(&ev), (Status::Pass, "2 of 2 completed".to_owned()));
        // Killed by a short grace period: the proxy says the backend went away.
        let ev = Evidence {
            held: vec![held("a", Some(200), None), held("b", None, Some("connection closed"))],
            ..Evidence::default()
        };
        let (status, found) = held_fact(&ev);
        assert_eq!(status, Status::Fail);
        assert!(found.contains("1 of 2 completed; b: connection closed after 12.0 s"), "{found}");
        // A refusal is not a completion either (the run was sent before the stop).
        let ev = Evidence { held: vec![held("c", Some(503), None)], ..Evidence::default() };
        assert_eq!(held_fact(&ev).0, Status::Fail);
        // No held runs (a rollout): no such fact.
        let mut r = Recorder::new(Env::new("production").expect("a name"), "live-rollout-under-load");
        judge(&mut r, "o", "rollout", &Evidence::default(), Budget { failed: 0, p99_ms: 1.0, runs_cut: 0 }, 0);
        assert!(!r.outcomes.iter().any(|o| o.subject.starts_with("runs held")));
    }

    #[test]
    fn ready_replicas_are_judged_from_the_state_the_disruption_began_in() {
        let ev = Evidence {
            ready: vec![(1800.0, 4), (4100.0, 4), (4400.0, 5), (6500.0, 5), (7000.0, 5), (9000.0, 6)],
            phases: vec![(0.0, "load".into()), (6727.0, "rollout restart".into())],
            ..Evidence::default()
        };
        assert_eq!(ready_window(&ev), (vec![5, 5, 6], Some(4)));
        // Still 4 when the rollout began: judged, and fails.
        let late = Evidence {
            ready: vec![(1800.0, 4), (6500.0, 4), (7000.0, 5)],
            phases: vec![(0.0, "load".into()), (6727.0, "rollout restart".into())],
            ..Evidence::default()
        };
        assert_eq!(ready_window(&late), (vec![4, 5], Some(4)));
        // A dip during the disruption counts.
        let dip = Evidence {
            ready: vec![(6500.0, 5), (7000.0, 4), (9000.0, 5)],
            phases: vec![(0.0, "load".into()), (6727.0, "drain".into())],
            ..Evidence::default()
        };
        assert_eq!(ready_window(&dip).0.iter().min(), Some(&4));
        // No phase: every sample.
        let bare = Evidence { ready: vec![(1.0, 3), (2.0, 2)], ..Evidence::default() };
        assert_eq!(ready_window(&bare), (vec![3, 2], None));
    }
}
