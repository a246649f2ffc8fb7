//! The Deployment, its Service and its volumes against the fixtures.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::context::Context;
use cbam_model::fixtures::Replicas;
use cbam_model::outcome::{Recorder, shown};
use cbam_model::quantity::Quantity;

pub(crate) fn int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Compares one quantity map (requests, limits, quota) with the fixture's.
pub(crate) fn compare_quantities(
    r: &mut Recorder,
    object: &str,
    prefix: &str,
    expected: &BTreeMap<String, String>,
    found: Option<&BTreeMap<String, K8sQuantity>>,
) {
    for (key, want) in expected {
        let subject = format!("{prefix}.{key}");
        let got = found.and_then(|m| m.get(key)).map(|q| q.0.as_str());
        let same = match (Quantity::parse(want), got.map(Quantity::parse)) {
            (Ok(w), Some(Ok(g))) => w.same(g),
            _ => false,
        };
        r.record(object, &subject, want, shown(got), same);
    }
    for key in found.into_iter().flat_map(|m| m.keys()).filter(|k| !expected.contains_key(*k)) {
        r.record(object, &format!("{prefix}.{key}"), "absent", "present", false);
    }
}

pub(crate) fn replicas(cx: &Context, r: &mut Recorder) {
    let object = cx.deployment_label();
    let Some(deployment) = cx.deployment() else {
        return r.missing(&object, "object");
    };
    let found = deployment.spec.as_ref().and_then(|s| s.replicas);
    match cx.fixture.replicas {
        Replicas::Fixed(n) => r.equal(&object, "spec.replicas", n.to_string(), shown(found)),
        Replicas::Hpa { min, max } => {
            r.record(&object, "spec.replicas (owned by the HPA)", "absent", shown(found), found.is_none());
            let hpa = cx.hpa();
            let range =
                hpa.and_then(|h| h.spec.as_ref()).map(|s| format!("{}-{}", shown(s.min_replicas), s.max_replicas));
            r.equal(&object, "replica range (HPA min-max)", format!("{min}-{max}"), shown(range));
        }
    }
}

pub(crate) fn resources(cx: &Context, r: &mut Recorder) {
    let object = cx.container_label();
    let Some(container) = cx.container() else {
        return r.missing(&object, "container");
    };
    let res = container.resources.as_ref();
    let want = &cx.fixture.resources;
    compare_quantities(r, &object, "requests", &want.requests, res.and_then(|x| x.requests.as_ref()));
    compare_quantities(r, &object, "limits", &want.limits, res.and_then(|x| x.limits.as_ref()));
}

pub(crate) fn image(cx: &Context, r: &mut Recorder) {
    let object = cx.container_label();
    let Some(container) = cx.container() else {
        return r.missing(&object, "container");
    };
    let want = format!("{}:{}", cx.fixture.image.name, cx.fixture.image.tag);
    r.equal(&object, "image", want, shown(container.image.clone()));
    // Unset, Kubernetes picks Always for `:latest` and IfNotPresent otherwise.
    r.equal(
        &object,
        "imagePullPolicy",
        cx.fixture.image_pull_policy.clone(),
        shown(container.image_pull_policy.clone()),
    );
}

pub(crate) fn service(cx: &Context, r: &mut Recorder) {
    let want = &cx.workload.service;
    let object = cx.label_of("Service", &want.name);
    let Some(spec) =
        cx.service().filter(|s| s.metadata.name.as_deref() == Some(&want.name)).and_then(|s| s.spec.as_ref())
    else {
        return r.missing(&object, "object");
    };
    r.equal(&object, "type", want.type_.clone(), spec.type_.clone().unwrap_or_else(|| "ClusterIP".to_owned()));
    let ports: Vec<String> = spec.ports.iter().flatten().map(|p| p.port.to_string()).collect();
    r.record(&object, "port", want.port, ports.join(","), ports == [want.port.to_string()]);
}

pub(crate) fn probes(cx: &Context, r: &mut Recorder) {
    let object = cx.container_label();
    let Some(container) = cx.container() else {
        return r.missing(&object, "container");
    };
    let path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        probe.as_ref().and_then(|p| p.http_get.as_ref()).and_then(|h| h.path.clone())
    };
    let want = &cx.workload.probes;
    r.equal(&object, "livenessProbe.httpGet.path", want.liveness.clone(), shown(path(&container.liveness_probe)));
    r.equal(&object, "readinessProbe.httpGet.path", want.readiness.clone(), shown(path(&container.readiness_probe)));
    let annotations = cx
        .deployment()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref());
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).cloned();
    let pods = format!("{} pod template", cx.deployment_label());
    r.equal(&pods, "prometheus.io/scrape", "true".to_owned(), shown(annotation("prometheus.io/scrape")));
    r.equal(&pods, "prometheus.io/path", want.metrics.clone(), shown(annotation("prometheus.io/path")));
    r.equal(
        &pods,
        "prometheus.io/port",
        cx.workload.service.container_port.to_string(),
        shown(annotation("prometheus.io/port")),
    );
}

pub(crate) fn security_context(cx: &Context, r: &mut Recorder) {
    let object = cx.container_label();
    let (Some(pod), Some(container)) = (cx.pod_spec(), cx.container()) else {
        return r.missing(&object, "container");
    };
    let want = &cx.workload.security;
    let pod_sc = pod.security_context.as_ref();
    let sc = container.security_context.as_ref();
    // The container's setting wins over the pod's, as the kubelet applies them.
    let run_as_user = sc.and_then(|s| s.run_as_user).or(pod_sc.and_then(|s| s.run_as_user));
    let non_root = sc.and_then(|s| s.run_as_non_root).or(pod_sc.and_then(|s| s.run_as_non_root));
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(pod_sc.and_then(|s| s.seccomp_profile.as_ref()))
        .map(|p| p.type_.clone());
    r.equal(&object, "runAsUser", want.run_as_user.to_string(), shown(run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or(pod_sc.and_then(|s| s.run_as_group));
    r.equal(&object, "runAsGroup", want.run_as_group.to_string(), shown(run_as_group));
    r.equal(&object, "fsGroup", want.fs_group.to_string(), shown(pod_sc.and_then(|s| s.fs_group)));
    r.equal(&object, "runAsNonRoot", want.run_as_non_root.to_string(), shown(non_root));
    r.equal(
        &object,
        "readOnlyRootFilesystem",
        want.read_only_root_filesystem.to_string(),
        shown(sc.and_then(|s| s.read_only_root_filesystem)),
    );
    r.equal(
        &object,
        "allowPrivilegeEscalation",
        want.allow_privilege_escalation.to_string(),
        shown(sc.and_then(|s| s.allow_privilege_escalation)),
    );
    let dropped: Vec<String> =
        sc.and_then(|s| s.capabilities.as_ref()).and_then(|c| c.drop.clone()).unwrap_or_default();
    r.equal(&object, "capabilities.drop", want.drop_capabilities.join(","), dropped.join(","));
    r.equal(&object, "seccompProfile.type", want.seccomp_profile.clone(), shown(seccomp));
}

pub(crate) fn rollout(cx: &Context, r: &mut Recorder) {
    let object = cx.deployment_label();
    let Some(spec) = cx.deployment().and_then(|d| d.spec.as_ref()) else {
        return r.missing(&object, "spec");
    };
    let want = &cx.workload.rollout;
    let strategy = spec.strategy.as_ref();
    let kind = strategy.and_then(|s| s.type_.clone()).unwrap_or_else(|| "RollingUpdate".to_owned());
    r.equal(&object, "strategy.type", "RollingUpdate".to_owned(), kind);
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    // Kubernetes defaults both to 25 % when unset.
    let setting = |v: Option<&IntOrString>| v.map_or_else(|| "25% (default)".to_owned(), int_or_string);
    r.equal(
        &object,
        "rollingUpdate.maxUnavailable",
        want.max_unavailable.to_string(),
        setting(rolling.and_then(|x| x.max_unavailable.as_ref())),
    );
    r.equal(
        &object,
        "rollingUpdate.maxSurge",
        want.max_surge.to_string(),
        setting(rolling.and_then(|x| x.max_surge.as_ref())),
    );
    let pod = spec.template.spec.as_ref();
    r.equal(
        &object,
        "terminationGracePeriodSeconds",
        want.termination_grace_period_seconds.to_string(),
        pod.and_then(|p| p.termination_grace_period_seconds)
            .map_or_else(|| "30 (default)".to_owned(), |v| v.to_string()),
    );
    for key in ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"] {
        // Without a toleration of its own, admission adds one of 300 s.
        let seconds = pod
            .and_then(|p| p.tolerations.as_ref())
            .and_then(|ts| {
                ts.iter().find(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some("NoExecute"))
            })
            .map_or_else(|| "300 (admission default)".to_owned(), |t| shown(t.toleration_seconds));
        r.equal(
            &object,
            &format!("tolerations[{key}].tolerationSeconds"),
            want.lost_node_toleration_seconds.to_string(),
            seconds,
        );
    }
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    let anti = pod.and_then(|p| p.affinity.as_ref()).and_then(|a| a.pod_anti_affinity.as_ref());
    let terms = anti
        .into_iter()
        .flat_map(|a| {
            let preferred =
                a.preferred_during_scheduling_ignored_during_execution.iter().flatten().map(|w| &w.pod_affinity_term);
            let required = a.required_during_scheduling_ignored_during_execution.iter().flatten();
            preferred.chain(required)
        })
        .filter(|term| {
            term.label_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
        })
        .map(|term| term.topology_key.clone())
        .collect::<Vec<_>>();
    r.record(
        &object,
        "pod anti-affinity against its own pods",
        format!("topologyKey {}", want.anti_affinity_topology_key),
        if terms.is_empty() { "none".to_owned() } else { format!("topologyKey {}", terms.join(",")) },
        terms.contains(&want.anti_affinity_topology_key),
    );
}

pub(crate) fn volumes(cx: &Context, r: &mut Recorder) {
    let container = cx.container();
    let pod = cx.pod_spec();
    for want in &cx.workload.volumes {
        let object = cx.label_of("PersistentVolumeClaim", &want.claim);
        let Some(pvc) = cx.pvcs().find(|p| p.metadata.name.as_deref() == Some(&want.claim)) else {
            r.missing(&object, "object");
            continue;
        };
        let spec = pvc.spec.as_ref();
        let storage = spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|res| res.requests.as_ref())
            .and_then(|req| req.get("storage"))
            .map(|q| q.0.clone());
        let same = match (Quantity::parse(&want.storage), storage.as_deref().map(Quantity::parse)) {
            (Ok(w), Some(Ok(g))) => w.same(g),
            _ => false,
        };
        r.record(&object, "requests.storage", &want.storage, shown(storage.as_ref()), same);
        let modes = spec.and_then(|s| s.access_modes.clone()).unwrap_or_default();
        r.equal(&object, "accessModes", want.access_mode.clone(), modes.join(","));
        // Mounted by the container at the documented path.
        let volume = pod
            .into_iter()
            .flat_map(|p| p.volumes.iter().flatten())
            .find(|v| v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name == want.claim));
        let mount = volume.and_then(|v| {
            container
                .into_iter()
                .flat_map(|c| c.volume_mounts.iter().flatten())
                .find(|m| m.name == v.name)
                .map(|m| m.mount_path.clone())
        });
        r.equal(&cx.container_label(), &format!("mount of {}", want.claim), want.mount.clone(), shown(mount));
    }
}
