//! The static checks, as a table: id, what it proves, where it applies.

mod app_config;
mod docs_drift;
mod env_contract;
mod governance;
pub(crate) mod hpa_timeline;
mod ingress;
mod invariants;
mod inventory;
mod pod_security;
mod wiring;
mod workload;

use crate::context::Context;
use cbam_model::outcome::Recorder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every environment.
    Every,
    /// Environments whose fixture says governance (HPA, PDB, quota, limits) applies.
    Governed,
}

#[derive(Debug)]
pub struct Check {
    pub id: &'static str,
    pub about: &'static str,
    pub(crate) scope: Scope,
    pub(crate) run: fn(&Context, &mut Recorder),
}

macro_rules! checks {
    ($($id:literal, $scope:ident, $run:path, $about:literal;)*) => {
        /// Every static check, in report order.
        pub const CHECKS: &[Check] = &[$(Check { id: $id, about: $about, scope: Scope::$scope, run: $run }),*];
    };
}

checks! {
    "inventory", Every, inventory::inventory, "exactly the documented resources per overlay";
    "namespace", Every, inventory::namespace, "every object in the environment's namespace";
    "secret-not-committed", Every, inventory::secret_not_committed, "no Secret object in the repository";
    "replicas", Every, workload::replicas, "fixed replicas, or none under the HPA";
    "resources", Every, workload::resources, "container requests and limits";
    "image", Every, workload::image, "image name and tag";
    "service", Every, workload::service, "ClusterIP service on the documented port";
    "probes", Every, workload::probes, "liveness, readiness and metrics endpoints";
    "security-context", Every, workload::security_context, "non-root UID, read-only root, no capabilities, seccomp";
    "rollout", Every, workload::rollout, "maxUnavailable 0, surge, grace period, anti-affinity";
    "volumes", Every, workload::volumes, "the four PVCs: size, access mode, mount path";
    "ingress-host", Every, ingress::host, "the environment's hostname";
    "tls", Every, ingress::tls, "TLS block for the hostname with its secret";
    "tls-issuer", Every, ingress::tls_issuer, "cert-manager ClusterIssuer per environment";
    "https-redirect", Every, ingress::https_redirect, "HTTP redirected to HTTPS";
    "rate-limit", Every, ingress::rate_limit, "100 requests per minute per client, no larger burst";
    "ingress-class", Every, ingress::class, "the ingress controller class";
    "ingress-failover", Every, ingress::failover, "a dead endpoint given up after 1 s, idempotent requests retried";
    "ingress-routes", Every, ingress::routes, "every documented endpoint routed to the Service (Ingress path matching)";
    "api-docs", Every, app_config::api_docs, "API docs on or off";
    "log-level", Every, app_config::log_level, "log level";
    "tracing", Every, app_config::tracing, "tracing on or off";
    "cors", Every, app_config::cors, "CORS policy and origins";
    "security-headers", Every, app_config::security_headers, "security headers the application sets";
    "hpa", Governed, governance::hpa, "HPA bounds, metrics and behavior";
    "pdb", Governed, governance::pdb, "PDB minAvailable";
    "resource-quota", Governed, governance::resource_quota, "namespace ResourceQuota";
    "limit-range", Governed, governance::limit_range, "container LimitRange";
    "wiring-service-selector", Every, wiring::service_selector, "Service selects the Deployment's pods";
    "wiring-service-port", Every, wiring::service_port, "Service targetPort is a container port";
    "wiring-probe-port", Every, wiring::probe_port, "probe ports are container ports";
    "wiring-ingress-backend", Every, wiring::ingress_backend, "Ingress backend is a Service port";
    "wiring-service-account", Every, wiring::service_account, "pods use the overlay's ServiceAccount";
    "wiring-config", Every, wiring::config_refs, "ConfigMap loaded, secret keys referenced";
    "wiring-volumes", Every, wiring::volume_claims, "volumes name existing PVCs and mounts existing volumes";
    "wiring-hpa-target", Governed, wiring::hpa_target, "HPA scales the Deployment";
    "wiring-pdb-selector", Governed, wiring::pdb_selector, "PDB selects the Deployment's pods";
    "pod-security-restricted", Every, pod_security::restricted, "Pod Security Standards: restricted";
    "quota-fits-scale", Governed, invariants::quota_fits_scale, "(maxReplicas + maxSurge) x pod resources within quota";
    "quota-pods", Governed, invariants::quota_pods, "peak pod count within quota";
    "quota-storage", Governed, invariants::quota_storage, "PVC count and storage within quota";
    "limit-range-bounds", Governed, invariants::limit_range_bounds, "containers within LimitRange min/max";
    "pdb-drainable", Governed, invariants::pdb_drainable, "PDB leaves room for a drain";
    "rwx-shared-volumes", Every, invariants::rwx_shared_volumes, "volumes shared by many replicas are ReadWriteMany";
    "ingress-tls-hosts", Every, invariants::ingress_tls_hosts, "TLS hosts equal rule hosts, with a secret";
    "cors-credentials", Every, invariants::cors_credentials, "no credentials with a wildcard origin";
    "graceful-shutdown", Every, invariants::graceful_shutdown, "the app serves on after SIGTERM and finishes inside the grace period";
    "mutable-tag-pulls", Every, invariants::mutable_tag_pulls, "a mutable image tag is pulled Always (no stale build on a node)";
    "hpa-timeline", Governed, hpa_timeline::timeline, "predicted scale-up/down timeline";
    "docs-drift", Every, docs_drift::docs_drift, "summary tables agree with the fixtures";
    "env-contract", Every, env_contract::env_contract, "environments differ only in the fields fixtures/env-contract.yaml lets differ";
}

/// docs/adding-a-check.md's example, compiled as the doc shows it.
#[cfg(test)]
#[path = "../../../docs/examples/static_check.rs"]
mod adding_a_check_example;

#[cfg(test)]
mod tests {
    use super::{CHECKS, adding_a_check_example};

    #[test]
    fn the_documented_example_is_a_row_apart() {
        let row = adding_a_check_example::ROW;
        assert!(CHECKS.iter().all(|c| c.id != row.id));
    }
}
