//! Invariants across objects that no single-object linter sees together.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::checks::app_config::origins;
use crate::checks::ingress::rule_hosts;
use crate::context::Context;
use cbam_model::outcome::{Recorder, shown};
use cbam_model::quantity::Quantity;

/// How many pods the workload may run at most: the HPA's maxReplicas where
/// an HPA governs it, else its fixed replica count (default 1).
fn max_replicas(cx: &Context) -> i32 {
    let fixed = cx.deployment().and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas);
    let governed = cx.fixture.governance.then(|| cx.hpa()).flatten().and_then(|h| h.spec.as_ref());
    governed.map(|s| s.max_replicas).or(fixed).unwrap_or(1)
}

/// An int-or-percent of `total`, rounded up (maxSurge) or down (maxUnavailable).
pub(crate) fn scaled_count(value: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: f64 = s.strip_suffix('%')?.parse().ok()?;
            let exact = pct / 100.0 * f64::from(total);
            #[expect(clippy::cast_possible_truncation, reason = "replica counts are small")]
            Some(if round_up { exact.ceil() as i32 } else { exact.floor() as i32 })
        }
    }
}

/// Pods that can exist at once: max replicas plus the rollout's surge.
fn peak_pods(cx: &Context) -> (i32, i32) {
    let max = max_replicas(cx);
    let surge = cx
        .deployment()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_surge.as_ref())
        .map_or(Some((f64::from(max) * 0.25).ceil() as i32), |v| scaled_count(v, max, true))
        .unwrap_or(0);
    (max, surge)
}

fn limit_range_value(cx: &Context, field: &str, resource: &str) -> Option<Quantity> {
    let item = cx.limit_range()?.spec.as_ref()?.limits.iter().find(|l| l.type_ == "Container")?;
    let map = match field {
        "default" => item.default.as_ref(),
        "defaultRequest" => item.default_request.as_ref(),
        "min" => item.min.as_ref(),
        _ => item.max.as_ref(),
    }?;
    Quantity::parse(&map.get(resource)?.0).ok()
}

/// A pod's effective request or limit for one resource, with LimitRange
/// defaults filled in as admission would: max(init containers, sum(containers)).
fn pod_amount(cx: &Context, kind: &str, resource: &str) -> Quantity {
    let Some(pod) = cx.pod_spec() else {
        return Quantity(0.0);
    };
    let amount = |c: &k8s_openapi::api::core::v1::Container| {
        let res = c.resources.as_ref();
        let map = if kind == "requests" {
            res.and_then(|r| r.requests.as_ref())
        } else {
            res.and_then(|r| r.limits.as_ref())
        };
        let explicit = map.and_then(|m| m.get(resource)).and_then(|q| Quantity::parse(&q.0).ok());
        let default = if cx.fixture.governance {
            let field = if kind == "requests" { "defaultRequest" } else { "default" };
            limit_range_value(cx, field, resource)
        } else {
            None
        };
        explicit.or(default).unwrap_or(Quantity(0.0)).0
    };
    // Folds from +0.0: f64's `sum` of nothing is -0.0, shown as "-0".
    let sum = pod.containers.iter().map(amount).fold(0.0, |a, b| a + b);
    let init = pod.init_containers.iter().flatten().map(amount).fold(0.0, f64::max);
    Quantity(sum.max(init))
}

fn quota_hard(cx: &Context) -> BTreeMap<String, Quantity> {
    cx.quota()
        .and_then(|q| q.spec.as_ref())
        .and_then(|s| s.hard.as_ref())
        .map(|hard| hard.iter().filter_map(|(k, v)| Some((k.clone(), Quantity::parse(&v.0).ok()?))).collect())
        .unwrap_or_default()
}

pub(crate) fn quota_fits_scale(cx: &Context, r: &mut Recorder) {
    let object = cx.governance_label("ResourceQuota", &cx.governance_fixture.resource_quota.name);
    let hard = quota_hard(cx);
    if hard.is_empty() {
        return r.missing(&object, "spec.hard");
    }
    let (max, surge) = peak_pods(cx);
    let pods = max + surge;
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            let key = format!("{kind}.{resource}");
            let Some(limit) = hard.get(&key) else {
                continue;
            };
            let need = pod_amount(cx, kind, resource).scaled(f64::from(pods));
            r.record(
                &object,
                &format!("{key} >= (maxReplicas {max} + maxSurge {surge}) x pod {kind}"),
                format!("<= {limit}"),
                need,
                need.0 <= limit.0 * (1.0 + 1e-9),
            );
        }
    }
}

pub(crate) fn quota_pods(cx: &Context, r: &mut Recorder) {
    let object = cx.governance_label("ResourceQuota", &cx.governance_fixture.resource_quota.name);
    let hard = quota_hard(cx);
    let Some(limit) = hard.get("pods") else {
        return r.missing(&object, "hard.pods");
    };
    let (max, surge) = peak_pods(cx);
    let pods = max + surge;
    r.record(
        &object,
        &format!("pods >= maxReplicas {max} + maxSurge {surge}"),
        format!("<= {limit}"),
        pods,
        f64::from(pods) <= limit.0,
    );
}

pub(crate) fn quota_storage(cx: &Context, r: &mut Recorder) {
    let object = cx.governance_label("ResourceQuota", &cx.governance_fixture.resource_quota.name);
    let hard = quota_hard(cx);
    let count = cx.pvcs().count();
    let total = cx
        .pvcs()
        .filter_map(|p| p.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .filter_map(|q| Quantity::parse(&q.0).ok())
        .fold(0.0, |a, q| a + q.0);
    match hard.get("persistentvolumeclaims") {
        Some(limit) => r.record(
            &object,
            "persistentvolumeclaims >= PVCs in the overlay",
            format!("<= {limit}"),
            count,
            count as f64 <= limit.0,
        ),
        None => r.missing(&object, "hard.persistentvolumeclaims"),
    }
    match hard.get("requests.storage") {
        Some(limit) => r.record(
            &object,
            "requests.storage >= sum of PVC requests",
            format!("<= {limit}"),
            Quantity(total),
            total <= limit.0,
        ),
        None => r.missing(&object, "hard.requests.storage"),
    }
}

pub(crate) fn limit_range_bounds(cx: &Context, r: &mut Recorder) {
    let Some(pod) = cx.pod_spec() else {
        return r.missing(&cx.deployment_label(), "pod spec");
    };
    if cx.limit_range().is_none() {
        return r.missing(&cx.governance_label("LimitRange", &cx.governance_fixture.limit_range.name), "object");
    }
    for container in pod.init_containers.iter().flatten().chain(pod.containers.iter()) {
        let object = format!("{} container {}", cx.deployment_label(), container.name);
        for resource in ["cpu", "memory"] {
            let res = container.resources.as_ref();
            let get = |map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
                map.and_then(|m| m.get(resource)).and_then(|q| Quantity::parse(&q.0).ok())
            };
            let request =
                get(res.and_then(|x| x.requests.as_ref())).or(limit_range_value(cx, "defaultRequest", resource));
            let limit = get(res.and_then(|x| x.limits.as_ref())).or(limit_range_value(cx, "default", resource));
            let min = limit_range_value(cx, "min", resource);
            let max = limit_range_value(cx, "max", resource);
            let bounds = format!("within [{}, {}]", shown(min), shown(max));
            for (kind, value) in [("requests", request), ("limits", limit)] {
                let Some(v) = value else { continue };
                let ok = min.is_none_or(|m| v.0 >= m.0) && max.is_none_or(|m| v.0 <= m.0);
                r.record(&object, &format!("{kind}.{resource}"), &bounds, v, ok);
            }
            if let (Some(req), Some(lim)) = (request, limit) {
                r.record(
                    &object,
                    &format!("requests.{resource} <= limits.{resource}"),
                    format!("<= {lim}"),
                    req,
                    req.0 <= lim.0,
                );
            }
        }
    }
}

pub(crate) fn pdb_drainable(cx: &Context, r: &mut Recorder) {
    let object = cx.governance_label("PodDisruptionBudget", &cx.governance_fixture.pdb.name);
    let Some(spec) = cx.pdb().and_then(|p| p.spec.as_ref()) else {
        return r.missing(&object, "spec");
    };
    let fixed = cx.deployment().and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas);
    let hpa_min = cx.hpa().and_then(|h| h.spec.as_ref()).map(|s| s.min_replicas.unwrap_or(1));
    let floors: Vec<(&str, i32)> = [("HPA minReplicas", hpa_min), ("Deployment replicas", fixed)]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
        .collect();
    if floors.is_empty() {
        return r.missing(&object, "a replica count to compare with");
    }
    for (name, replicas) in floors {
        // A drain makes progress only if one pod may go while the budget holds.
        let allowed_down = match (&spec.min_available, &spec.max_unavailable) {
            (Some(min), _) => scaled_count(min, replicas, true).map(|m| replicas - m),
            (None, Some(max)) => scaled_count(max, replicas, false),
            (None, None) => Some(replicas),
        };
        r.record(
            &object,
            &format!("disruptions allowed at {name} {replicas}"),
            ">= 1",
            shown(allowed_down),
            allowed_down.is_some_and(|d| d >= 1),
        );
    }
}

pub(crate) fn rwx_shared_volumes(cx: &Context, r: &mut Recorder) {
    let Some(pod) = cx.pod_spec() else {
        return r.missing(&cx.deployment_label(), "pod spec");
    };
    let replicas = max_replicas(cx);
    for volume in pod.volumes.iter().flatten() {
        let Some(claim) = &volume.persistent_volume_claim else {
            continue;
        };
        let object = cx.label_of("PersistentVolumeClaim", &claim.claim_name);
        let modes = cx
            .pvcs()
            .find(|p| p.metadata.name.as_deref() == Some(&claim.claim_name))
            .and_then(|p| p.spec.as_ref()?.access_modes.clone())
            .unwrap_or_default();
        let rwx = modes.iter().any(|m| m == "ReadWriteMany");
        r.record(
            &object,
            &format!("access mode when mounted by up to {replicas} replicas across nodes"),
            if replicas > 1 { "ReadWriteMany" } else { "any" },
            if modes.is_empty() { "none".to_owned() } else { modes.join(",") },
            replicas <= 1 || rwx,
        );
    }
}

pub(crate) fn ingress_tls_hosts(cx: &Context, r: &mut Recorder) {
    let object = cx.label_of("Ingress", &cx.workload.ingress.name);
    let Some(ingress) = cx.ingress() else {
        return r.missing(&object, "object");
    };
    let mut rules = rule_hosts(ingress);
    rules.sort();
    rules.dedup();
    let tls = ingress.spec.as_ref().and_then(|s| s.tls.clone()).unwrap_or_default();
    let mut covered: Vec<String> = tls.iter().flat_map(|t| t.hosts.clone().unwrap_or_default()).collect();
    covered.sort();
    covered.dedup();
    r.at("spec.tls").equal(&object, "TLS hosts = rule hosts", rules.join(","), covered.join(","));
    for (index, entry) in tls.iter().enumerate() {
        let secret = entry.secret_name.clone().filter(|s| !s.is_empty());
        r.record(&object, &format!("tls[{index}].secretName"), "set", shown(secret.as_ref()), secret.is_some());
    }
}

/// The application's SIGTERM sequence fits the pod's lifecycle: it keeps
/// serving a while (the endpoints drop it meanwhile), and finishes its
/// in-flight runs before the kubelet's SIGKILL.
pub(crate) fn graceful_shutdown(cx: &Context, r: &mut Recorder) {
    let object = cx.label_of("ConfigMap", &cx.workload.config_map);
    let data = cx.config_map().and_then(|c| c.data.as_ref());
    let seconds = |key: &str| data.and_then(|d| d.get(key)).and_then(|v| v.trim().parse::<f64>().ok());
    let (delay, timeout) = (seconds("SHUTDOWN_DELAY_SECONDS"), seconds("SHUTDOWN_TIMEOUT_SECONDS"));
    let grace = cx.pod_spec().and_then(|p| p.termination_grace_period_seconds).unwrap_or(30);
    r.record(
        &object,
        "SHUTDOWN_DELAY_SECONDS (serving after SIGTERM while endpoints drop the pod)",
        "> 0",
        shown(data.and_then(|d| d.get("SHUTDOWN_DELAY_SECONDS"))),
        delay.is_some_and(|d| d > 0.0),
    );
    #[expect(clippy::cast_precision_loss, reason = "a grace period in seconds")]
    let fits = matches!((delay, timeout), (Some(d), Some(t)) if d < t && t <= grace as f64);
    r.record(
        &object,
        "SHUTDOWN_TIMEOUT_SECONDS (in-flight runs finished before SIGKILL)",
        format!("after the delay, <= terminationGracePeriodSeconds {grace}"),
        shown(data.and_then(|d| d.get("SHUTDOWN_TIMEOUT_SECONDS"))),
        fits,
    );
}

/// Whether a tag names one build forever: a digest, or a release version
/// `vMAJOR.MINOR.PATCH` (the release process never pushes one twice;
/// DEPLOYMENT_GUIDE.md decision 15). Every other tag moves.
pub(crate) fn immutable_tag(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let tag = image.rsplit_once(':').map(|(_, tag)| if tag.contains('/') { "" } else { tag }).unwrap_or("");
    let Some(version) = tag.strip_prefix('v') else { return false };
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn mutable_tag_pulls(cx: &Context, r: &mut Recorder) {
    let object = cx.container_label();
    let Some(container) = cx.container() else {
        return r.missing(&object, "container");
    };
    let image = container.image.clone().unwrap_or_default();
    if immutable_tag(&image) {
        r.record(&object, "imagePullPolicy (immutable tag)", "any", shown(container.image_pull_policy.clone()), true);
    } else {
        let policy = container.image_pull_policy.clone();
        // Unset means IfNotPresent for any tag but `latest`.
        let always = policy.as_deref() == Some("Always") || (policy.is_none() && image.ends_with(":latest"));
        r.record(&object, &format!("imagePullPolicy (mutable tag {image})"), "Always", shown(policy), always);
    }
}

pub(crate) fn cors_credentials(cx: &Context, r: &mut Recorder) {
    let object = cx.label_of("ConfigMap", &cx.workload.config_map);
    let Some(data) = cx.config_map().and_then(|c| c.data.as_ref()) else {
        return r.missing(&object, "data");
    };
    let wildcard = data.get("CORS_ALLOWED_ORIGINS").is_some_and(|v| origins(v).iter().any(|o| o == "*"));
    let credentials = data.get("CORS_ALLOW_CREDENTIALS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // Browsers reject credentialed responses with `Access-Control-Allow-Origin: *`.
    r.record(
        &object,
        "CORS_ALLOW_CREDENTIALS with a wildcard origin",
        if wildcard { "false" } else { "any (origins are listed)" },
        shown(data.get("CORS_ALLOW_CREDENTIALS")),
        !(wildcard && credentials),
    );
}

#[cfg(test)]
mod tests {
    use super::immutable_tag;

    #[rstest::rstest]
    #[case("ghcr.io/greenlang/cbam-api:v1.0.0", true)]
    #[case("ghcr.io/greenlang/cbam-api@sha256:944f", true)]
    #[case("ghcr.io/greenlang/cbam-api:dev-latest", false)]
    #[case("ghcr.io/greenlang/cbam-api:v1.0", false)]
    #[case("ghcr.io/greenlang/cbam-api:v1.0.0-rc1", false)]
    #[case("localhost:5000/cbam-api", false)]
    #[case("cbam-api", false)]
    fn a_tag_is_immutable_only_as_a_digest_or_release_version(#[case] image: &str, #[case] immutable: bool) {
        assert_eq!(immutable_tag(image), immutable);
    }
}
