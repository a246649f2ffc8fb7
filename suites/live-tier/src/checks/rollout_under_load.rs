//! `live-rollout-under-load`: rolling updates of the Deployment while both
//! probers run. By default the pod template is restarted (as `kubectl
//! rollout restart` does); with `--baseline DIR` the previous release's
//! overlay is applied, then the candidate, then the baseline again (the
//! rollback) and the candidate once more (the state the later checks see).
//! No request may fail and Ready replicas never drop below the documented
//! count (maxUnavailable 0, the app's drain on SIGTERM).

use cbam_cluster::wait::{Poll, until};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::apply::apply;
use crate::context::LiveContext;
use crate::judges::disruption::judge;
use crate::traffic::under_load::{Session, write_evidence};
use cbam_error_chain::render as chain;
use cbam_model::manifest::Object;
use cbam_model::outcome::Recorder;

/// The annotation `kubectl rollout restart` sets: a new pod template.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// A restart marker's value: any new value makes a new pod template.
fn marker() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("cbam-conformance-{secs}")
}

/// What the Deployment's rollout still waits for; None once complete: the
/// controller saw the latest template, every replica runs it and is
/// available, no old pod left.
fn still_rolling(d: &Deployment) -> Option<String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    let (observed, updated, total, available) = (
        s.observed_generation.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    );
    let done = observed >= generation && updated == want && total == want && available == want;
    (!done).then(|| {
        format!("generation {observed}/{generation}, {updated} updated, {total} total, {available} available of {want}")
    })
}

pub(crate) async fn rollout_under_load(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = cx.deployment_label();
    let Some(mut session) = Session::open(cx, r, &object, "rollout").await else { return };
    session.settle().await;
    let api: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let name = &cx.workload.deployment;
    let wait = || async {
        until(&format!("{object}: rollout complete"), cx.timeouts.rollout, || async {
            match api.get(name).await {
                Ok(d) => still_rolling(&d).map_or(Poll::Done(()), Poll::Pending),
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        })
        .await
        .map_err(|e| e.to_string())
    };
    let done = match &cx.baseline {
        None => {
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: marker()}}}}});
            session.mark("rollout restart");
            match api.patch(name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                Err(e) => Err(format!("restart refused: {e}")),
                Ok(_) => wait().await.map(|()| "complete".to_owned()),
            }
        }
        Some(baseline) => {
            let steps: [(&str, &[Object]); 4] = [
                ("baseline", baseline),
                ("candidate", cx.candidate),
                ("rollback to baseline", baseline),
                ("forward to candidate", cx.candidate),
            ];
            let mut done = Ok("baseline, candidate, rollback, candidate: each complete".to_owned());
            for (step, objects) in steps {
                session.mark(step);
                let applied = async {
                    for object in objects {
                        apply(&cx.client, object).await.map_err(|e| chain(&e))?;
                    }
                    wait().await
                };
                if let Err(e) = applied.await {
                    done = Err(format!("{step}: {e}"));
                    break;
                }
            }
            done
        }
    };
    session.mark("rollout complete");
    session.settle().await;
    let ev = session.finish(cx).await;
    r.record(
        &object,
        "rolling update under load",
        "completes",
        done.clone().err().unwrap_or("complete".into()),
        done.is_ok(),
    );
    let min_ready = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
    judge(r, &object, "rollout", &ev, cx.disruption.budgets.rollout, min_ready);
    let title = format!("{}: rolling update under load", cx.env);
    r.section(write_evidence(cx.report_dir, &format!("{}-rollout", cx.env), &title, &ev));
}

#[cfg(test)]
mod tests {
    use super::still_rolling;
    use k8s_openapi::api::apps::v1::Deployment;

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        total: i32,
        available: i32,
    ) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                       "availableReplicas": available}
        }))
        .expect("deployment")
    }

    #[test]
    fn complete_only_when_every_replica_runs_the_new_template() {
        assert!(still_rolling(&deployment(2, 2, 3, 3, 3, 3)).is_none());
        assert!(still_rolling(&deployment(2, 1, 3, 3, 3, 3)).is_some(), "the controller has not seen the change");
        assert!(still_rolling(&deployment(2, 2, 3, 3, 4, 3)).is_some(), "an old pod is still there");
        assert!(still_rolling(&deployment(2, 2, 3, 2, 3, 3)).is_some());
    }
}
