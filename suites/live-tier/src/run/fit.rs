//! Fitting the deployment to a small test cluster: every CPU and memory
//! request and limit, and the quota and limit-range amounts, divided by one
//! factor, so utilisation percentages, quota arithmetic and limit ratios
//! keep their meaning. The static tier still checks the true values.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use cbam_model::manifest::Object;
use cbam_model::quantity::Quantity;

const SCALED: [&str; 2] = ["cpu", "memory"];

/// The peak requests of the workload must stay within this share of one
/// node's capacity (all nodes share the host's cores and memory).
const BUDGET_SHARE: f64 = 0.5;

/// Divides a CPU or memory quantity, rounding up to whole millicores or bytes.
fn divide(resource: &str, value: &K8sQuantity, factor: u32) -> K8sQuantity {
    let Ok(q) = Quantity::parse(&value.0) else { return value.clone() };
    let scaled = q.0 / f64::from(factor);
    if resource == "cpu" {
        K8sQuantity(format!("{}m", (scaled * 1000.0).ceil()))
    } else {
        K8sQuantity(Quantity(scaled.ceil()).to_string())
    }
}

fn scale_map(map: &mut Option<BTreeMap<String, K8sQuantity>>, factor: u32, key: impl Fn(&str) -> Option<&'static str>) {
    for (name, value) in map.iter_mut().flatten() {
        if let Some(resource) = key(name) {
            *value = divide(resource, value, factor);
        }
    }
}

fn plain(name: &str) -> Option<&'static str> {
    SCALED.into_iter().find(|r| *r == name)
}

fn quota_key(name: &str) -> Option<&'static str> {
    SCALED.into_iter().find(|r| name == *r || name.ends_with(&format!(".{r}")))
}

pub(crate) fn scale(objects: &mut [Object], factor: u32) {
    if factor <= 1 {
        return;
    }
    for object in objects {
        match object {
            Object::Deployment(d) => {
                let pod = d.spec.as_mut().and_then(|s| s.template.spec.as_mut());
                for c in
                    pod.into_iter().flat_map(|p| p.containers.iter_mut().chain(p.init_containers.iter_mut().flatten()))
                {
                    if let Some(r) = c.resources.as_mut() {
                        scale_map(&mut r.requests, factor, plain);
                        scale_map(&mut r.limits, factor, plain);
                    }
                }
            }
            Object::ResourceQuota(q) => {
                if let Some(spec) = q.spec.as_mut() {
                    scale_map(&mut spec.hard, factor, quota_key);
                }
            }
            Object::LimitRange(l) => {
                for item in l.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
                    scale_map(&mut item.default, factor, plain);
                    scale_map(&mut item.default_request, factor, plain);
                    scale_map(&mut item.min, factor, plain);
                    scale_map(&mut item.max, factor, plain);
                }
            }
            _ => {}
        }
    }
}

/// The smallest power of two that brings the peak requests (peak pods x
/// per-pod requests) within the budget of one node's capacity.
pub(crate) fn auto_factor(peak_pods: u32, pod_cpu: f64, pod_memory: f64, node_cpu: f64, node_memory: f64) -> u32 {
    let need = |per_pod: f64, capacity: f64| f64::from(peak_pods) * per_pod / (capacity * BUDGET_SHARE);
    let ratio = need(pod_cpu, node_cpu).max(need(pod_memory, node_memory)).max(1.0);
    let mut factor = 1u32;
    while f64::from(factor) < ratio && factor < 1024 {
        factor *= 2;
    }
    factor
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbam_model::manifest::parse;

    #[test]
    fn production_on_two_cores_is_scaled_by_sixteen() {
        // 15 replicas + 1 surge pod, 1 CPU / 1Gi each, on a 2-core 24 GiB node.
        assert_eq!(auto_factor(16, 1.0, 1_073_741_824.0, 2.0, 24.0 * 1_073_741_824.0), 16);
        assert_eq!(auto_factor(1, 0.1, 1.0, 2.0, 1e10), 1);
    }

    #[test]
    fn scales_requests_limits_quota_and_limit_range_alike() {
        let yaml = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {requests.cpu: '32', limits.memory: 64Gi, pods: '50', requests.storage: 500Gi}}\n---\napiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\nspec: {limits: [{type: Container, min: {cpu: 100m}, max: {cpu: 4000m, memory: 8Gi}}]}\n";
        let mut objects = parse("test", yaml).expect("valid");
        scale(&mut objects, 16);
        let Object::ResourceQuota(q) = &objects[0] else { panic!("quota") };
        let hard = q.spec.as_ref().and_then(|s| s.hard.clone()).expect("hard");
        assert_eq!(hard["requests.cpu"].0, "2000m");
        assert_eq!(hard["limits.memory"].0, "4Gi");
        assert_eq!(hard["pods"].0, "50", "counts are not scaled");
        assert_eq!(hard["requests.storage"].0, "500Gi", "storage is not scaled");
        let Object::LimitRange(l) = &objects[1] else { panic!("limit range") };
        let item = &l.spec.as_ref().expect("spec").limits[0];
        assert_eq!(item.min.as_ref().expect("min")["cpu"].0, "7m", "6.25m rounds up to whole millicores");
        assert_eq!(item.max.as_ref().expect("max")["memory"].0, "512Mi");
    }
}
