//! What a check sees: the environment's fixtures and its rendered objects.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, LimitRange, Namespace, PersistentVolumeClaim, PodSpec, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use cbam_model::environment::Env;
use cbam_model::fixtures::{Environment, Governance, Workload};
use cbam_model::manifest::Object;

/// Another environment's overlay, rendered, or why it could not be (the
/// environment contract compares with those that rendered).
pub(crate) type Peer = Result<Vec<Object>, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) env: Env,
    pub(crate) fixture: &'a Environment,
    pub(crate) workload: &'a Workload,
    pub(crate) governance_fixture: &'a Governance,
    /// The overlay as kustomize rendered it.
    pub(crate) overlay: &'a [Object],
    /// infra/{hpa,pdb,resourcequota,limitrange}.yaml, applied with `kubectl apply -f`.
    pub(crate) governance: &'a [Object],
    /// infra/INFRASTRUCTURE_SUMMARY.md
    pub(crate) summary: &'a str,
    /// Every environment's rendered overlay, this one included, or why it
    /// did not render (env-contract).
    pub(crate) peers: &'a [(Env, Peer)],
    /// fixtures/env-contract.yaml
    pub(crate) env_contract: &'a cbam_model::fixtures::EnvContract,
}

macro_rules! first_of {
    ($fn_name:ident, $list:ident, $variant:ident, $ty:ty) => {
        pub(crate) fn $fn_name(&self) -> Option<&'a $ty> {
            self.$list.iter().find_map(|object| match object {
                Object::$variant(inner) => Some(&**inner),
                _ => None,
            })
        }
    };
}

impl<'a> Context<'a> {
    first_of!(namespace_object, overlay, Namespace, Namespace);
    first_of!(service_account, overlay, ServiceAccount, ServiceAccount);
    first_of!(service, overlay, Service, Service);
    first_of!(ingress, overlay, Ingress, Ingress);
    first_of!(hpa, governance, HorizontalPodAutoscaler, HorizontalPodAutoscaler);
    first_of!(pdb, governance, PodDisruptionBudget, PodDisruptionBudget);
    first_of!(quota, governance, ResourceQuota, ResourceQuota);
    first_of!(limit_range, governance, LimitRange, LimitRange);

    /// The Deployment the fixtures name (the overlay has exactly one when it conforms).
    pub(crate) fn deployment(&self) -> Option<&'a Deployment> {
        self.overlay.iter().find_map(|object| match object {
            Object::Deployment(d) if d.metadata.name.as_deref() == Some(&self.workload.deployment) => Some(&**d),
            _ => None,
        })
    }

    pub(crate) fn config_map(&self) -> Option<&'a ConfigMap> {
        self.overlay.iter().find_map(|object| match object {
            Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(&self.workload.config_map) => Some(&**c),
            _ => None,
        })
    }

    pub(crate) fn pvcs(&self) -> impl Iterator<Item = &'a PersistentVolumeClaim> + use<'a> {
        self.overlay.iter().filter_map(|object| match object {
            Object::PersistentVolumeClaim(p) => Some(&**p),
            _ => None,
        })
    }

    pub(crate) fn pod_spec(&self) -> Option<&'a PodSpec> {
        self.deployment()?.spec.as_ref()?.template.spec.as_ref()
    }

    /// The application container the fixtures name.
    pub(crate) fn container(&self) -> Option<&'a Container> {
        self.pod_spec()?.containers.iter().find(|c| c.name == self.workload.container)
    }

    /// "Deployment ns/name", as failures name the workload.
    pub(crate) fn deployment_label(&self) -> String {
        format!("Deployment {}/{}", self.fixture.namespace, self.workload.deployment)
    }

    pub(crate) fn container_label(&self) -> String {
        format!("{} container {}", self.deployment_label(), self.workload.container)
    }

    pub(crate) fn label_of(&self, kind: &str, name: &str) -> String {
        format!("{kind} {}/{name}", self.fixture.namespace)
    }

    pub(crate) fn governance_label(&self, kind: &str, name: &str) -> String {
        format!("{kind} {}/{name}", self.governance_fixture.namespace)
    }
}
