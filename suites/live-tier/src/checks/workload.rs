//! Live checks of the workload: the objects exist, the documented replicas
//! are Ready and spread as the anti-affinity documents, every pod answers
//! its probes and exposes the pipeline metric.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

use cbam_error_chain::render as chain;
use cbam_model::outcome::Recorder;

use crate::app_pods::{app_pods, is_ready, node_of, pod_get};
use crate::context::LiveContext;
use crate::judges::spread;

pub(crate) async fn inventory(cx: &LiveContext<'_>, r: &mut Recorder) {
    let mut wanted: Vec<(String, String)> =
        cx.fixture.inventory.iter().map(|o| (o.kind.clone(), o.name.clone())).collect();
    if cx.fixture.governance {
        let g = cx.governance;
        wanted.extend([
            ("HorizontalPodAutoscaler".into(), g.hpa.name.clone()),
            ("PodDisruptionBudget".into(), g.pdb.name.clone()),
            ("ResourceQuota".into(), g.resource_quota.name.clone()),
            ("LimitRange".into(), g.limit_range.name.clone()),
        ]);
    }
    for (kind, name) in wanted {
        let path = match kind.as_str() {
            "Namespace" => format!("/api/v1/namespaces/{name}"),
            "ServiceAccount" => format!("/api/v1/namespaces/{}/serviceaccounts/{name}", cx.namespace()),
            "ConfigMap" => format!("/api/v1/namespaces/{}/configmaps/{name}", cx.namespace()),
            "Service" => format!("/api/v1/namespaces/{}/services/{name}", cx.namespace()),
            "PersistentVolumeClaim" => format!("/api/v1/namespaces/{}/persistentvolumeclaims/{name}", cx.namespace()),
            "ResourceQuota" => format!("/api/v1/namespaces/{}/resourcequotas/{name}", cx.namespace()),
            "LimitRange" => format!("/api/v1/namespaces/{}/limitranges/{name}", cx.namespace()),
            "Deployment" => format!("/apis/apps/v1/namespaces/{}/deployments/{name}", cx.namespace()),
            "Ingress" => format!("/apis/networking.k8s.io/v1/namespaces/{}/ingresses/{name}", cx.namespace()),
            "HorizontalPodAutoscaler" => {
                format!("/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers/{name}", cx.namespace())
            }
            "PodDisruptionBudget" => {
                format!("/apis/policy/v1/namespaces/{}/poddisruptionbudgets/{name}", cx.namespace())
            }
            other => {
                r.record(
                    &format!("{other} {name}"),
                    "in the cluster",
                    "a kind the harness reads",
                    "unknown kind",
                    false,
                );
                continue;
            }
        };
        let found = match http::Request::get(&path).body(Vec::new()) {
            Ok(request) => cx.client.request_text(request).await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let object = format!("{kind} {}/{name}", cx.namespace());
        match found {
            Ok(()) => r.record(&object, "in the cluster", "present", "present", true),
            Err(e) => r.record(&object, "in the cluster", "present", format!("absent ({e})"), false),
        }
    }
    // The claims must be bound: the workload's volumes are real.
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(cx.client.clone(), cx.namespace());
    for volume in &cx.workload.volumes {
        let phase = pvcs.get(&volume.claim).await.ok().and_then(|p| p.status).and_then(|s| s.phase);
        r.equal(
            &format!("PersistentVolumeClaim {}/{}", cx.namespace(), volume.claim),
            "status.phase",
            "Bound".to_owned(),
            phase.unwrap_or_else(|| "absent".into()),
        );
    }
}

pub(crate) async fn replicas(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = cx.deployment_label();
    // Settle first: the Deployment's Ready replicas equal what it asks for
    // (under an HPA, the HPA's first syncs may still be raising it).
    let deployments: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let settled =
        cbam_cluster::wait::until(&format!("{object}: Ready replicas = desired"), cx.timeouts.rollout, || {
            let api = deployments.clone();
            let name = cx.workload.deployment.clone();
            async move {
                match api.get(&name).await {
                    Ok(d) => {
                        let desired = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                        if ready == desired {
                            cbam_cluster::wait::Poll::Done(())
                        } else {
                            cbam_cluster::wait::Poll::Pending(format!("{ready} Ready of {desired}"))
                        }
                    }
                    Err(e) => cbam_cluster::wait::Poll::failed(e.to_string(), &e),
                }
            }
        })
        .await;
    if let Err(e) = settled {
        return r.record(&object, "Ready replicas at rest", cx.replicas_at_rest(), e.to_string(), false);
    }
    match app_pods(cx).await {
        Ok(pods) => {
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            let want = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
            let hpa = if cx.fixture.governance { hpa_replicas(cx).await } else { String::new() };
            r.record(&object, "Ready replicas at rest", want, format!("{ready}{hpa}"), ready == want);
            spread_at_rest(cx, r, &object, &pods).await;
        }
        Err(e) => r.record(&object, "Ready replicas at rest", cx.replicas_at_rest(), chain(&e), false),
    }
}

/// The Ready replicas' topology domains (`rollout.anti_affinity_topology_key`
/// of fixtures/workload.yaml) against even spreading over the domains the
/// pods may be scheduled to (judges/spread.rs).
async fn spread_at_rest(cx: &LiveContext<'_>, r: &mut Recorder, object: &str, pods: &[Pod]) {
    let key = &cx.workload.rollout.anti_affinity_topology_key;
    let subject = format!("Ready replicas per {key} at rest (the preferred anti-affinity)");
    let nodes = match Api::<Node>::all(cx.client.clone()).list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return r.record(object, &subject, "the nodes read", chain(&e), false),
    };
    let tolerations =
        pods.first().and_then(|p| p.spec.as_ref()).and_then(|s| s.tolerations.clone()).unwrap_or_default();
    let domain_of = |node: &Node| node.metadata.labels.as_ref().and_then(|l| l.get(key)).cloned();
    let domains: BTreeSet<String> =
        nodes.iter().filter(|n| spread::schedulable(n, &tolerations)).filter_map(domain_of).collect();
    let by_node: BTreeMap<String, String> =
        nodes.iter().filter_map(|n| Some((n.metadata.name.clone()?, domain_of(n)?))).collect();
    let placed: Vec<String> =
        pods.iter().filter(|p| is_ready(p)).filter_map(|p| by_node.get(node_of(p)?).cloned()).collect();
    let s = spread::judge(&placed, domains.len());
    r.record(
        object,
        &subject,
        format!("at most {} per {key} ({} replicas, {} schedulable)", s.allowed, placed.len(), domains.len()),
        format!("{} on {}", s.most, s.domain),
        s.holds(),
    );
}

/// ", HPA current/desired N/M", for the evidence of an autoscaled environment.
async fn hpa_replicas(cx: &LiveContext<'_>) -> String {
    let api: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(cx.client.clone(), cx.namespace());
    match api.get(&cx.governance.hpa.name).await.ok().and_then(|h| h.status) {
        Some(s) => format!(" (HPA current {}, desired {})", s.current_replicas.unwrap_or(0), s.desired_replicas),
        None => " (HPA status unknown)".to_owned(),
    }
}

pub(crate) async fn probes(cx: &LiveContext<'_>, r: &mut Recorder) {
    let pods = match app_pods(cx).await {
        Ok(pods) if !pods.is_empty() => pods,
        Ok(_) => return r.missing(&cx.deployment_label(), "pods"),
        Err(e) => return r.record(&cx.deployment_label(), "pods", "listed", chain(&e), false),
    };
    let port = cx.workload.service.container_port;
    let p = &cx.workload.probes;
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let object = format!("Pod {}/{name}", cx.namespace());
        for path in [&p.liveness, &p.readiness] {
            let found = pod_get(cx, &name, port, path).await;
            r.record(
                &object,
                &format!("GET {path}"),
                "200",
                found.as_ref().map_or_else(|e| chain(e), |_| "200".into()),
                found.is_ok(),
            );
        }
        let metrics = pod_get(cx, &name, port, &p.metrics).await;
        let exposes = metrics.as_ref().is_ok_and(|m| m.lines().any(|l| l.starts_with("cbam_pipeline_active_runs ")));
        r.record(
            &object,
            &format!("GET {} exposes cbam_pipeline_active_runs", p.metrics),
            "present",
            match &metrics {
                Ok(_) if exposes => "present".to_owned(),
                Ok(_) => "absent from the exposition".to_owned(),
                Err(e) => chain(e),
            },
            exposes,
        );
    }
}
