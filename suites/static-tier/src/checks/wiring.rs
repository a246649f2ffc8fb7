//! Cross-object references: what points at what, and whether it is there.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::checks::workload::int_or_string;
use crate::context::Context;
use cbam_model::manifest::Object;
use cbam_model::outcome::{Recorder, shown};

type Labels = BTreeMap<String, String>;

fn pod_labels(cx: &Context) -> Labels {
    cx.deployment()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// A LabelSelector as the API server evaluates it; an empty one selects
/// everything, which for a PDB or Service is never what was meant.
pub(crate) fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_labels = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

fn selector_text(selector: &LabelSelector) -> String {
    let labels = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}"));
    let expressions = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| format!("{} {} ({})", e.key, e.operator, e.values.clone().unwrap_or_default().join(",")));
    let all: Vec<String> = labels.chain(expressions).collect();
    if all.is_empty() { "{} (selects everything)".to_owned() } else { all.join(",") }
}

fn labels_text(labels: &Labels) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The container port a Service or probe port refers to (by name or number).
fn resolve_port(container: &Container, port: &IntOrString) -> Option<i32> {
    let ports = container.ports.iter().flatten();
    match port {
        IntOrString::Int(n) => ports.clone().find(|p| p.container_port == *n).map(|p| p.container_port),
        IntOrString::String(name) => ports.clone().find(|p| p.name.as_deref() == Some(name)).map(|p| p.container_port),
    }
}

pub(crate) fn service_selector(cx: &Context, r: &mut Recorder) {
    let object = cx.label_of("Service", &cx.workload.service.name);
    let Some(service) = cx.service() else {
        return r.missing(&object, "object");
    };
    let selector = service.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let labels = pod_labels(cx);
    let matches = !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v));
    r.at("selector").record(
        &object,
        "selector matches the Deployment's pod labels",
        labels_text(&labels),
        if selector.is_empty() { "{} (selects nothing)".to_owned() } else { labels_text(&selector) },
        matches,
    );
}

pub(crate) fn service_port(cx: &Context, r: &mut Recorder) {
    let object = cx.label_of("Service", &cx.workload.service.name);
    let (Some(service), Some(container)) = (cx.service(), cx.container()) else {
        return r.missing(&object, "service and container");
    };
    for port in service.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
        let target = port.target_port.clone().unwrap_or(IntOrString::Int(port.port));
        let resolved = resolve_port(container, &target);
        r.at("spec.ports").record(
            &object,
            &format!("port {} targetPort {}", port.port, int_or_string(&target)),
            format!("container port {}", cx.workload.service.container_port),
            resolved.map_or_else(|| "no such container port".to_owned(), |p| format!("container port {p}")),
            resolved == Some(cx.workload.service.container_port),
        );
    }
}

pub(crate) fn probe_port(cx: &Context, r: &mut Recorder) {
    let object = cx.container_label();
    let Some(container) = cx.container() else {
        return r.missing(&object, "container");
    };
    let probes: [(&'static str, &Option<Probe>); 3] = [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ];
    for (name, probe) in probes {
        let Some(get) = probe.as_ref().and_then(|p| p.http_get.as_ref()) else {
            continue;
        };
        let resolved = resolve_port(container, &get.port);
        r.at(name).record(
            &object,
            &format!("{name} port {}", int_or_string(&get.port)),
            format!("container port {}", cx.workload.service.container_port),
            resolved.map_or_else(|| "no such container port".to_owned(), |p| format!("container port {p}")),
            resolved == Some(cx.workload.service.container_port),
        );
    }
}

pub(crate) fn ingress_backend(cx: &Context, r: &mut Recorder) {
    let object = cx.label_of("Ingress", &cx.workload.ingress.name);
    let Some(ingress) = cx.ingress() else {
        return r.missing(&object, "object");
    };
    let service = cx.service();
    let backends = ingress
        .spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .flat_map(|rule| rule.http.iter().flat_map(|h| h.paths.iter()))
        .filter_map(|path| path.backend.service.as_ref());
    let mut seen = 0;
    for backend in backends {
        seen += 1;
        let port = backend.port.as_ref();
        let port_text =
            port.map(|p| p.name.clone().or(p.number.map(|n| n.to_string())).unwrap_or_default()).unwrap_or_default();
        let exists = service.filter(|s| s.metadata.name.as_deref() == Some(&backend.name)).is_some_and(|s| {
            s.spec.iter().flat_map(|sp| sp.ports.iter().flatten()).any(|sp| {
                port.is_some_and(|p| {
                    p.name.as_ref().is_some_and(|n| sp.name.as_ref() == Some(n)) || p.number == Some(sp.port)
                })
            })
        });
        r.at("backend").record(
            &object,
            &format!("backend {}:{port_text}", backend.name),
            "a port of a Service in the overlay",
            if exists { "found" } else { "no such Service port" },
            exists,
        );
    }
    if seen == 0 {
        r.missing(&object, "service backend");
    }
}

pub(crate) fn service_account(cx: &Context, r: &mut Recorder) {
    let object = cx.deployment_label();
    let Some(pod) = cx.pod_spec() else {
        return r.missing(&object, "pod spec");
    };
    let used = pod.service_account_name.clone().unwrap_or_else(|| "default".to_owned());
    let defined = cx.service_account().and_then(|sa| sa.metadata.name.clone());
    r.equal(&object, "serviceAccountName (defined in the overlay)", cx.workload.service_account.clone(), used.clone());
    r.record(
        &object,
        &format!("ServiceAccount {used}"),
        "defined in the overlay",
        shown(defined.as_ref()),
        defined.as_deref() == Some(&used),
    );
}

pub(crate) fn config_refs(cx: &Context, r: &mut Recorder) {
    let object = cx.container_label();
    let Some(container) = cx.container() else {
        return r.missing(&object, "container");
    };
    let config_maps: Vec<String> =
        cx.overlay.iter().filter(|o| matches!(o, Object::ConfigMap(_))).map(|o| o.name().to_owned()).collect();
    let loaded: Vec<String> =
        container.env_from.iter().flatten().filter_map(|e| e.config_map_ref.as_ref().map(|c| c.name.clone())).collect();
    r.record(
        &object,
        "envFrom configMapRef",
        &cx.workload.config_map,
        if loaded.is_empty() { "none".to_owned() } else { loaded.join(",") },
        loaded.contains(&cx.workload.config_map) && loaded.iter().all(|n| config_maps.contains(n)),
    );
    let secret_keys: Vec<String> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|s| format!("{}/{}", s.name, s.key))
        .collect();
    let want: Vec<String> =
        cx.workload.secret.keys.iter().map(|k| format!("{}/{k}", cx.workload.secret.name)).collect();
    r.equal(&object, "secretKeyRef (secret created out of band)", want.join(","), secret_keys.join(","));
}

pub(crate) fn volume_claims(cx: &Context, r: &mut Recorder) {
    let object = cx.deployment_label();
    let Some(pod) = cx.pod_spec() else {
        return r.missing(&object, "pod spec");
    };
    let claims: Vec<String> = cx.pvcs().filter_map(|p| p.metadata.name.clone()).collect();
    for volume in pod.volumes.iter().flatten() {
        if let Some(pvc) = &volume.persistent_volume_claim {
            let ok = claims.contains(&pvc.claim_name);
            r.at("volumes").record(
                &object,
                &format!("volume {} claim {}", volume.name, pvc.claim_name),
                "a PVC in the overlay",
                if ok { "found" } else { "absent" },
                ok,
            );
        }
    }
    let names: Vec<&str> = pod.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    for container in pod.containers.iter().chain(pod.init_containers.iter().flatten()) {
        for mount in container.volume_mounts.iter().flatten() {
            let ok = names.contains(&mount.name.as_str());
            r.at("volumeMounts").record(
                &format!("{object} container {}", container.name),
                &format!("volumeMount {}", mount.name),
                "a volume of the pod",
                if ok { "found" } else { "absent" },
                ok,
            );
        }
    }
}

pub(crate) fn hpa_target(cx: &Context, r: &mut Recorder) {
    let object = cx.governance_label("HorizontalPodAutoscaler", &cx.governance_fixture.hpa.name);
    let Some(hpa) = cx.hpa() else {
        return r.missing(&object, "object");
    };
    let target = hpa.spec.as_ref().map(|s| &s.scale_target_ref);
    let found = target.map(|t| format!("{} {} {}", shown(t.api_version.clone()), t.kind, t.name));
    let t = &cx.governance_fixture.hpa.target;
    let want = format!("{} {} {}", t.api_version, t.kind, t.name);
    let deployed = cx.deployment().is_some();
    r.equal(&object, "scaleTargetRef", want, shown(found));
    r.record(
        &object,
        "target Deployment rendered by the overlay",
        "present",
        if deployed { "present" } else { "absent" },
        deployed,
    );
    r.equal(
        &object,
        "namespace (same as the target)",
        cx.fixture.namespace.clone(),
        shown(hpa.metadata.namespace.clone()),
    );
}

pub(crate) fn pdb_selector(cx: &Context, r: &mut Recorder) {
    let object = cx.governance_label("PodDisruptionBudget", &cx.governance_fixture.pdb.name);
    let Some(pdb) = cx.pdb() else {
        return r.missing(&object, "object");
    };
    let selector = pdb.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let labels = pod_labels(cx);
    let empty = selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && selector.match_expressions.as_ref().is_none_or(Vec::is_empty);
    r.at("selector").record(
        &object,
        "selector matches the Deployment's pod labels",
        labels_text(&labels),
        selector_text(&selector),
        !empty && selects(&selector, &labels),
    );
    r.equal(
        &object,
        "namespace (same as the pods)",
        cx.fixture.namespace.clone(),
        shown(pdb.metadata.namespace.clone()),
    );
}
