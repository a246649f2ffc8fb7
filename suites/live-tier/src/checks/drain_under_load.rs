//! `live-drain-under-load`: a node drained while both probers run: cordon a
//! node that hosts an app pod, evict every app pod on it (retrying while the
//! PDB refuses), wait for the replacements Ready elsewhere, uncordon. No
//! request may fail; the PDB's minAvailable stays Ready throughout.

use crate::actions::node_drain::{cordon, empty_node, replaced_elsewhere};
use crate::app_pods::{app_pods, is_ready};
use crate::context::LiveContext;
use crate::judges::disruption::judge;
use crate::traffic::under_load::{Session, write_evidence};
use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;

pub(crate) async fn drain_under_load(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = cx.deployment_label();
    let node = match app_pods(cx).await {
        Ok(pods) => pods.iter().find(|p| is_ready(p)).and_then(|p| p.spec.as_ref().and_then(|s| s.node_name.clone())),
        Err(e) => return r.record(&object, "drain under load", "a node hosting a Ready pod", chain(&e), false),
    };
    let Some(node) = node else {
        return r.record(&object, "drain under load", "a node hosting a Ready pod", "none", false);
    };
    let Some(mut session) = Session::open(cx, r, &object, "drain").await else { return };
    session.settle().await;
    session.mark(format!("cordon {node}"));
    let drained = match cordon(cx, &node, true).await {
        Err(e) => Err(chain(&e)),
        Ok(()) => match empty_node(cx, &node).await {
            Err(e) => Err(e.to_string()),
            Ok((evicted, refused)) => {
                session.mark(format!("{evicted} evicted"));
                let want = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
                replaced_elsewhere(cx, &node, want)
                    .await
                    .map(|()| format!("{evicted} evicted ({refused} refusals retried), replacements Ready"))
                    .map_err(|e| e.to_string())
            }
        },
    };
    session.mark("replacements Ready");
    let uncordoned = cordon(cx, &node, false).await;
    session.mark("uncordon");
    session.settle().await;
    let ev = session.finish(cx).await;
    r.record(
        &object,
        &format!("drain of {node} under load"),
        "completes",
        drained.clone().unwrap_or_else(|e| e),
        drained.is_ok(),
    );
    if let Err(e) = uncordoned {
        r.record(&object, "uncordon", "node schedulable again", chain(&e), false);
    }
    let min_ready = usize::try_from(cx.governance.pdb.min_available).unwrap_or(0);
    judge(r, &object, "drain", &ev, cx.disruption.budgets.drain, min_ready);
    let title = format!("{}: drain of {node} under load", cx.env);
    r.section(write_evidence(cx.report_dir, &format!("{}-drain", cx.env), &title, &ev));
}
