//! `live-rollout`: the Deployment reaches the documented Ready replicas
//! within the rollout timeout; on timeout the last status seen is the fact.

use cbam_cluster::wait::{Poll, until};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

use crate::context::LiveContext;
use cbam_model::outcome::Recorder;

pub(crate) async fn rollout(cx: &LiveContext<'_>, r: &mut Recorder) {
    let want = cx.replicas_at_rest();
    let api: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let name = cx.workload.deployment.clone();
    let result = until(&format!("{}: {want} Ready replicas", cx.deployment_label()), cx.timeouts.rollout, || {
        let (api, name) = (api.clone(), name.clone());
        async move {
            match api.get(&name).await {
                Ok(d) => {
                    let status = d.status.unwrap_or_default();
                    let ready = status.ready_replicas.unwrap_or(0);
                    if ready >= want {
                        Poll::Done(ready)
                    } else {
                        Poll::Pending(format!(
                            "{ready} ready, {} updated, {} unavailable",
                            status.updated_replicas.unwrap_or(0),
                            status.unavailable_replicas.unwrap_or(0)
                        ))
                    }
                }
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await;
    let ok = result.is_ok();
    r.record(
        &cx.deployment_label(),
        "rollout",
        format!("{want} Ready replicas"),
        result.map_or_else(|e| e.to_string(), |n| format!("{n} Ready")),
        ok,
    );
}
