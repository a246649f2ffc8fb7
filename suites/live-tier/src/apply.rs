//! Server-side apply of typed objects, under the harness's field manager.

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use cbam_model::manifest::Object;

pub(crate) const FIELD_MANAGER: &str = "cbam-conformance";

#[derive(Debug, thiserror::Error)]
#[error("apply {object}")]
pub struct ApplyError {
    pub object: String,
    #[source]
    pub source: kube::Error,
}

async fn namespaced<K>(client: &Client, object: &K, label: String) -> Result<(), ApplyError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let meta = object.meta();
    let api: Api<K> = Api::namespaced(client.clone(), meta.namespace.as_deref().unwrap_or("default"));
    let name = meta.name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .map(drop)
        .map_err(|source| ApplyError { object: label, source })
}

pub(crate) async fn apply(client: &Client, object: &Object) -> Result<(), ApplyError> {
    let label = object.label();
    match object {
        Object::Namespace(o) => {
            let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            let name = o.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&**o))
                .await
                .map(drop)
                .map_err(|source| ApplyError { object: label, source })
        }
        Object::ServiceAccount(o) => namespaced(client, &**o, label).await,
        Object::ConfigMap(o) => namespaced(client, &**o, label).await,
        Object::Secret(o) => namespaced(client, &**o, label).await,
        Object::Service(o) => namespaced(client, &**o, label).await,
        Object::PersistentVolumeClaim(o) => namespaced(client, &**o, label).await,
        Object::Deployment(o) => namespaced(client, &**o, label).await,
        Object::Ingress(o) => namespaced(client, &**o, label).await,
        Object::HorizontalPodAutoscaler(o) => namespaced(client, &**o, label).await,
        Object::PodDisruptionBudget(o) => namespaced(client, &**o, label).await,
        Object::ResourceQuota(o) => namespaced(client, &**o, label).await,
        Object::LimitRange(o) => namespaced(client, &**o, label).await,
    }
}
