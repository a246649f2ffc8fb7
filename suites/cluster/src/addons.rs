//! Platform addons are a harness layer, not part of a node image: the
//! ingress controller (Traefik with its NGINX provider, class `nginx`),
//! metrics-server, Prometheus, prometheus-adapter and ReadWriteMany storage.
//! Their manifests are kept once, in ci/addons/ (compiled in; image tags
//! from ci/versions.env), and applied server-side by the provider as soon as
//! the API answers; the readiness gate then waits for them. Their images are
//! the kit's offline archives, which every node imports when it boots. What
//! a cluster needs to be a cluster at all (CoreDNS, the RBAC a full kubeadm
//! init would bind) stays with the node, as kind and k3s ship it. A cluster
//! the harness did not create gets nothing.

use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::core::TypeMeta;
use kube::core::gvk::ParseGroupVersionError;
use kube::discovery::{self, Scope};

/// The field manager the addons are applied under.
const FIELD_MANAGER: &str = "cbam-addons";

/// Applied in this order (a namespace before what lives in it).
const MANIFESTS: [(&str, &str); 6] = [
    ("20-local-path-config.yaml", include_str!("../../../ci/addons/20-local-path-config.yaml")),
    (PROVISIONER_MANIFEST, include_str!("../../../ci/addons/21-local-path.yaml")),
    ("30-metrics-server.yaml", include_str!("../../../ci/addons/30-metrics-server.yaml")),
    ("40-traefik.yaml", include_str!("../../../ci/addons/40-traefik.yaml")),
    ("50-prometheus.yaml", include_str!("../../../ci/addons/50-prometheus.yaml")),
    ("60-prometheus-adapter.yaml", include_str!("../../../ci/addons/60-prometheus-adapter.yaml")),
];

/// The kit's storage provisioner and its default class, which a node image
/// that ships its own (kind's) does not get.
const PROVISIONER_MANIFEST: &str = "21-local-path.yaml";

/// Who provides the cluster's storage provisioner and its one default
/// StorageClass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioner {
    /// The harness (21-local-path.yaml): the kit's node ships none.
    Harness,
    /// The node image (kind's local-path-provisioner and `standard` class):
    /// the harness only configures it, and restarts it so that its next
    /// volume follows the configuration.
    NodeImage,
}

/// Where local-path-provisioner runs, in every provider's manifests.
pub const PROVISIONER_NAMESPACE: &str = "local-path-storage";
pub const PROVISIONER_DEPLOYMENT: &str = "local-path-provisioner";
/// The pod template annotation that restarts the provisioner when its
/// configuration changed: the ConfigMap's resourceVersion (a mounted
/// ConfigMap reaches a running pod only at the kubelet's next sync, up to a
/// minute later, and a volume provisioned meanwhile would be node-local).
const CONFIG_VERSION_ANNOTATION: &str = "cbam.io/local-path-config-version";

/// The pins every image tag comes from (`__NAME_VERSION__` in a manifest).
const VERSIONS: &str = include_str!("../../../ci/versions.env");

#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("read the addon manifest {file}")]
    Yaml {
        file: &'static str,
        #[source]
        source: serde_norway::Error,
    },
    #[error("read the addon manifest {file}: an object")]
    Object {
        file: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("read the addon manifest {file}: {object} has no {what}")]
    Incomplete { file: &'static str, object: String, what: &'static str },
    #[error("read the addon manifest {file}: apiVersion of {object}")]
    ApiVersion {
        file: &'static str,
        object: String,
        #[source]
        source: ParseGroupVersionError,
    },
    #[error("find the API serving {0}")]
    Discovery(String, #[source] Box<kube::Error>),
    #[error("apply {0}")]
    Apply(String, #[source] Box<kube::Error>),
    #[error("restart {PROVISIONER_NAMESPACE}/{PROVISIONER_DEPLOYMENT} on its new configuration")]
    Restart(#[source] Box<kube::Error>),
    #[error("make StorageClass {0} bind at once")]
    Binding(String, #[source] Box<kube::Error>),
}

/// Every `(__NAME__, value)` of ci/versions.env's pins.
fn pins() -> Vec<(String, &'static str)> {
    VERSIONS
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| !name.trim_start().starts_with('#'))
        .map(|(name, value)| (format!("__{}__", name.trim()), value.trim()))
        .collect()
}

/// VALUE with every placeholder in its strings replaced by its pin. The
/// manifest is parsed first and only strings are edited, so a pin never
/// becomes YAML text (a tag such as `1.10` would otherwise be a number).
fn pinned(value: &mut serde_json::Value, pins: &[(String, &str)]) {
    match value {
        serde_json::Value::String(text) => {
            for (placeholder, pin) in pins {
                if text.contains(placeholder.as_str()) {
                    *text = text.replace(placeholder.as_str(), pin);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| pinned(v, pins)),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| pinned(v, pins)),
        _ => {}
    }
}

/// Every object of every addon manifest, in order, with its file.
pub fn objects() -> Result<Vec<(&'static str, DynamicObject)>, AddonError> {
    objects_pinned(&pins())
}

fn objects_pinned(pins: &[(String, &str)]) -> Result<Vec<(&'static str, DynamicObject)>, AddonError> {
    let mut out = Vec::new();
    for (file, text) in MANIFESTS {
        for document in serde_norway::Deserializer::from_str(text) {
            let mut value: serde_json::Value =
                serde::Deserialize::deserialize(document).map_err(|source| AddonError::Yaml { file, source })?;
            if value.is_null() {
                continue;
            }
            pinned(&mut value, pins);
            let object = serde_json::from_value(value).map_err(|source| AddonError::Object { file, source })?;
            out.push((file, object));
        }
    }
    Ok(out)
}

fn label(object: &DynamicObject) -> String {
    let kind = object.types.as_ref().map_or("?", |t| t.kind.as_str());
    let name = object.metadata.name.as_deref().unwrap_or("?");
    match object.metadata.namespace.as_deref() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Applies every addon object (server-side, forced: the addons are the
/// harness's own), finding each kind's API by discovery; with a provisioner
/// the node image ships, its configuration only, and the provisioner
/// restarted on it.
pub async fn install(client: &Client, provisioner: Provisioner) -> Result<(), AddonError> {
    let mut config_version = None;
    for (file, object) in objects()? {
        if provisioner == Provisioner::NodeImage && file == PROVISIONER_MANIFEST {
            continue;
        }
        let what = label(&object);
        let TypeMeta { api_version, kind } =
            object.types.clone().ok_or_else(|| AddonError::Incomplete { file, object: what.clone(), what: "kind" })?;
        let name = object.metadata.name.clone().ok_or_else(|| AddonError::Incomplete {
            file,
            object: what.clone(),
            what: "name",
        })?;
        let is_provisioner_config = kind == "ConfigMap" && name == "local-path-config";
        let gvk = GroupVersionKind::try_from(&TypeMeta { api_version, kind })
            .map_err(|source| AddonError::ApiVersion { file, object: what.clone(), source })?;
        let (resource, capabilities) =
            discovery::pinned_kind(client, &gvk).await.map_err(|e| AddonError::Discovery(what.clone(), Box::new(e)))?;
        let api: Api<DynamicObject> = match (capabilities.scope, object.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        let applied = api
            .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
            .await
            .map_err(|e| AddonError::Apply(what, Box::new(e)))?;
        if is_provisioner_config {
            config_version = applied.metadata.resource_version;
        }
    }
    match (provisioner, config_version) {
        (Provisioner::NodeImage, Some(version)) => {
            restart_provisioner(client, &version).await?;
            bind_at_once(client).await
        }
        _ => Ok(()),
    }
}

/// The provisioner's default class, made to bind a claim at once, as the
/// kit's class does and as the shared filesystems the deployment documents
/// (EFS, NFS) do. kind's `standard` waits for the first consumer: five
/// replicas created together then all went to the node the first one was
/// scheduled to, because every claim was being provisioned for that node
/// (the release gate's staging on kind, 2026-12-08), although a volume of
/// the shared filesystem is reachable from every node. A class's binding
/// mode cannot change, so it is deleted and created again with the same
/// name, provisioner, policy and default mark; only on a cluster the harness
/// made, before any claim.
async fn bind_at_once(client: &Client) -> Result<(), AddonError> {
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{DeleteParams, ListParams, PostParams};
    let api: Api<StorageClass> = Api::all(client.clone());
    let failed = |name: &str, e| AddonError::Binding(name.to_owned(), Box::new(e));
    let classes = api.list(&ListParams::default()).await.map_err(|e| failed("(list)", e))?;
    for class in classes.items {
        let name = class.metadata.name.clone().unwrap_or_default();
        let waits = class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
        if class.provisioner != "rancher.io/local-path" || !waits {
            continue;
        }
        let again = StorageClass {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: class.metadata.labels.clone(),
                annotations: class.metadata.annotations.clone(),
                ..Default::default()
            },
            volume_binding_mode: Some("Immediate".to_owned()),
            ..class
        };
        api.delete(&name, &DeleteParams::default()).await.map_err(|e| failed(&name, e))?;
        api.create(&PostParams::default(), &again).await.map_err(|e| failed(&name, e))?;
    }
    Ok(())
}

/// Rolls the node image's provisioner onto configuration VERSION (a merge
/// patch of its pod template: kind's own fields stay kind's).
async fn restart_provisioner(client: &Client, version: &str) -> Result<(), AddonError> {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: Api<Deployment> = Api::namespaced(client.clone(), PROVISIONER_NAMESPACE);
    let patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {CONFIG_VERSION_ANNOTATION: version}}}}
    });
    api.patch(PROVISIONER_DEPLOYMENT, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| AddonError::Restart(Box::new(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_addon_object_is_whole_and_every_image_pinned() {
        let objects = objects().expect("the addon manifests parse");
        assert!(objects.len() > 30, "{} objects", objects.len());
        for (file, object) in &objects {
            assert!(object.types.is_some() && object.metadata.name.is_some(), "{file}: {}", label(object));
        }
        for (file, object) in &objects {
            let text = serde_json::to_string(&object.data).expect("json");
            assert!(
                !text.contains("_VERSION__") && !text.contains("_TAG__"),
                "{file} keeps a placeholder no pin replaced"
            );
        }
        let traefik = objects.iter().find(|(_, o)| label(o) == "DaemonSet traefik/traefik").expect("traefik");
        let image = serde_json::to_string(&traefik.1.data).expect("json");
        assert!(image.contains("docker.io/library/traefik:v3."), "pinned from ci/versions.env: {image}");
    }

    /// A pin that looks like a number stays inside its string.
    #[test]
    fn a_numeric_looking_pin_stays_a_string() {
        let pins = [("__TRAEFIK_VERSION__".to_owned(), "1e3"), ("__COREDNS_VERSION__".to_owned(), "true")];
        let objects = objects_pinned(&pins).expect("the addon manifests parse");
        let traefik = objects.iter().find(|(_, o)| label(o) == "DaemonSet traefik/traefik").expect("traefik");
        let image = &traefik.1.data["spec"]["template"]["spec"]["containers"][0]["image"];
        assert_eq!(image.as_str(), Some("docker.io/library/traefik:1e3"));
    }
}
