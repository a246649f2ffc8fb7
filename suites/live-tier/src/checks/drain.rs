//! The PDB during a drain: cordon a node that hosts an app pod, evict it
//! through the Eviction API while sampling available replicas; a second
//! eviction that would break the budget must be refused with 429 by that
//! budget (its DisruptionBudget cause naming it); the drain
//! completes once the replacement is Ready on another node.

use std::time::Instant;

use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;

use crate::actions::node_drain::{
    EvictionError, cordon, empty_node, evict, pdb_status, refused_by_budget, replaced_elsewhere,
};
use crate::app_pods::{app_pods, is_ready, selector};
use crate::context::LiveContext;
use crate::traffic::ready_sampler::{ReadySampler, lowest};

pub(crate) async fn pdb_during_drain(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("PodDisruptionBudget {}/{}", cx.namespace(), cx.governance.pdb.name);
    let min_available = usize::try_from(cx.governance.pdb.min_available).unwrap_or(0);
    let pods = match app_pods(cx).await {
        Ok(p) => p,
        Err(e) => return r.record(&object, "drain", "pods to drain", chain(&e), false),
    };
    let Some(victim) = pods.iter().find(|p| is_ready(p)).cloned() else {
        return r.record(&object, "drain", "a Ready pod", "none", false);
    };
    let node = victim.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let victim_name = victim.metadata.name.clone().unwrap_or_default();
    let selector = match selector(cx).await {
        Ok(s) => s,
        Err(e) => return r.record(&object, "drain", "the Deployment's selector", chain(&e), false),
    };
    // Sample available (Ready, not terminating) replicas while the drain runs.
    let sampler = ReadySampler::start(cx, selector);
    let started = Instant::now();
    if let Err(e) = cordon(cx, &node, true).await {
        sampler.stop().await;
        return r.record(&object, "cordon", "node cordoned", chain(&e), false);
    }
    let emptied = empty_node(cx, &node).await;
    r.record(
        &object,
        &format!("evict the app pods on {node} (first: {victim_name})"),
        "all evicted, refusals only while the budget is spent",
        match &emptied {
            Ok((evicted, refused)) => format!("{evicted} evicted, {refused} refusals (429) retried"),
            Err(e) => e.to_string(),
        },
        emptied.is_ok(),
    );
    let budget = pdb_status(cx).await;
    let pdb = &cx.governance.pdb.name;
    let (mut allowed, mut refusal, mut error) = (0usize, None, None);
    for _ in 0..16 {
        let ready: Vec<String> = match app_pods(cx).await {
            Ok(pods) => pods.iter().filter(|p| is_ready(p)).filter_map(|p| p.metadata.name.clone()).collect(),
            Err(e) => {
                error = Some(chain(&e));
                break;
            }
        };
        let Some(next) = ready.into_iter().find(|p| *p != victim_name) else { break };
        match evict(cx, &next).await {
            Ok(()) => allowed += 1,
            Err(EvictionError::Refused { code, message, .. }) if refused_by_budget(code, &message, pdb) => {
                refusal = Some(format!("{next}: {message}"));
                break;
            }
            Err(e) => {
                error = Some(chain(&e));
                break;
            }
        }
    }
    r.record(
        &object,
        &format!("further evictions while {victim_name} is replaced"),
        format!("one refused with 429 by the disruption budget {pdb} once it is spent"),
        match (&refusal, &error) {
            (Some(pod), _) => format!("{allowed} allowed, then {pod} refused with 429 (PDB before: {budget})"),
            (None, Some(e)) => format!("{allowed} allowed, then {e} (PDB before: {budget})"),
            (None, None) => format!("{allowed} allowed, none refused (PDB before: {budget})"),
        },
        refusal.is_some(),
    );
    let want = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
    let drained = replaced_elsewhere(cx, &node, want).await;
    let samples = sampler.stop().await;
    let uncordoned = cordon(cx, &node, false).await;
    r.record(
        &object,
        &format!("drain of {node} completes"),
        "replacements Ready on other nodes",
        drained
            .as_ref()
            .map_or_else(|e| e.to_string(), |_| format!("done in {:.1} s", started.elapsed().as_secs_f64())),
        drained.is_ok(),
    );
    r.record(
        &object,
        &format!("available replicas during the drain ({} samples)", samples.len()),
        format!(">= {min_available}"),
        lowest(&samples).map_or_else(|| "no sample".to_owned(), |n| format!("lowest {n}")),
        lowest(&samples).is_some_and(|n| n >= min_available),
    );
    if let Err(e) = uncordoned {
        r.record(&object, "uncordon", "node schedulable again", chain(&e), false);
    }
}
