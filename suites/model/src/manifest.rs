//! Rendered YAML parsed into typed k8s-openapi objects, strictly: an unknown
//! kind or field is an input error, never a silent pass.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use crate::unknown_fields::unknown_fields;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("parse YAML of {origin}")]
    Yaml {
        origin: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("read {origin}: document {index} has no apiVersion/kind")]
    NotAnObject { origin: String, index: usize },
    #[error(
        "read {origin}: unknown kind {api_version}/{kind} (document {index}); the harness models only what the deployment documents"
    )]
    UnknownKind { origin: String, index: usize, api_version: String, kind: String },
    #[error("decode {kind} {name} from {origin}")]
    Invalid {
        origin: String,
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("decode {kind} {name} from {origin}: unknown field(s) {}", fields.join(", "))]
    UnknownField { origin: String, kind: String, name: String, fields: Vec<String> },
}

/// One typed object, tagged by its kind.
#[derive(Debug, Clone)]
pub enum Object {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Service(Box<Service>),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
    Deployment(Box<Deployment>),
    Ingress(Box<Ingress>),
    HorizontalPodAutoscaler(Box<HorizontalPodAutoscaler>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    ResourceQuota(Box<ResourceQuota>),
    LimitRange(Box<LimitRange>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Service(_) => "Service",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::Deployment(_) => "Deployment",
            Object::Ingress(_) => "Ingress",
            Object::HorizontalPodAutoscaler(_) => "HorizontalPodAutoscaler",
            Object::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Object::ResourceQuota(_) => "ResourceQuota",
            Object::LimitRange(_) => "LimitRange",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::HorizontalPodAutoscaler(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::ResourceQuota(o) => &o.metadata,
            Object::LimitRange(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// The object as JSON, as kustomize rendered it (typed fields only).
    pub fn to_value(&self) -> Value {
        let value = match self {
            Object::Namespace(o) => serde_json::to_value(o),
            Object::ServiceAccount(o) => serde_json::to_value(o),
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::Secret(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::PersistentVolumeClaim(o) => serde_json::to_value(o),
            Object::Deployment(o) => serde_json::to_value(o),
            Object::Ingress(o) => serde_json::to_value(o),
            Object::HorizontalPodAutoscaler(o) => serde_json::to_value(o),
            Object::PodDisruptionBudget(o) => serde_json::to_value(o),
            Object::ResourceQuota(o) => serde_json::to_value(o),
            Object::LimitRange(o) => serde_json::to_value(o),
        };
        // Serializing a decoded object cannot fail (it was decoded from JSON).
        value.unwrap_or(Value::Null)
    }

    /// "Kind namespace/name", as failures name objects.
    pub fn label(&self) -> String {
        match &self.metadata().namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

fn typed<T>(origin: &str, kind: &str, name: &str, value: Value) -> Result<T, ManifestError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let invalid = |source| ManifestError::Invalid {
        origin: origin.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        source,
    };
    let object: T = serde_json::from_value(value.clone()).map_err(invalid)?;
    let round_trip = serde_json::to_value(&object).map_err(invalid)?;
    let fields = unknown_fields(&value, &round_trip);
    if fields.is_empty() {
        Ok(object)
    } else {
        Err(ManifestError::UnknownField {
            origin: origin.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            fields,
        })
    }
}

fn decode(origin: &str, index: usize, value: Value) -> Result<Object, ManifestError> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err(ManifestError::NotAnObject { origin: origin.to_owned(), index });
    };
    let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>").to_owned();
    macro_rules! into {
        ($variant:ident) => {
            Object::$variant(Box::new(typed(origin, &kind, &name, value)?))
        };
    }
    Ok(match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => into!(Namespace),
        ("v1", "ServiceAccount") => into!(ServiceAccount),
        ("v1", "ConfigMap") => into!(ConfigMap),
        ("v1", "Secret") => into!(Secret),
        ("v1", "Service") => into!(Service),
        ("v1", "PersistentVolumeClaim") => into!(PersistentVolumeClaim),
        ("v1", "ResourceQuota") => into!(ResourceQuota),
        ("v1", "LimitRange") => into!(LimitRange),
        ("apps/v1", "Deployment") => into!(Deployment),
        ("networking.k8s.io/v1", "Ingress") => into!(Ingress),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => into!(HorizontalPodAutoscaler),
        ("policy/v1", "PodDisruptionBudget") => into!(PodDisruptionBudget),
        _ => {
            return Err(ManifestError::UnknownKind { origin: origin.to_owned(), index, api_version, kind });
        }
    })
}

/// Every document of a multi-document YAML stream, untyped, in order (with
/// its index in the stream).
fn documents(origin: &str, yaml: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let mut values = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let value =
            Value::deserialize(document).map_err(|source| ManifestError::Yaml { origin: origin.to_owned(), source })?;
        if !value.is_null() {
            values.push((index, value));
        }
    }
    Ok(values)
}

/// Every document of a YAML stream, untyped, with its index in the stream.
pub fn values(origin: &str, yaml: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    documents(origin, yaml)
}

/// The typed objects of documents `values` read.
pub fn decode_all(origin: &str, values: Vec<(usize, Value)>) -> Result<Vec<Object>, ManifestError> {
    values.into_iter().map(|(index, value)| decode(origin, index, value)).collect()
}

/// Every object of a multi-document YAML stream, in order.
pub fn parse(origin: &str, yaml: &str) -> Result<Vec<Object>, ManifestError> {
    documents(origin, yaml)?.into_iter().map(|(index, value)| decode(origin, index, value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_kinds() {
        let yaml = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: n}\n---\n";
        let objects = parse("test", yaml).expect("valid");
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].label(), "ServiceAccount n/a");
    }

    #[test]
    fn rejects_unknown_kind() {
        let yaml = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n";
        let err = parse("test", yaml).expect_err("unknown kind");
        assert!(matches!(err, ManifestError::UnknownKind { .. }), "{err}");
    }

    #[test]
    fn rejects_misspelt_field() {
        let yaml =
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80, targetport: 8000}]}\n";
        let err = parse("test", yaml).expect_err("unknown field");
        assert!(err.to_string().contains("spec.ports[0].targetport"), "{err}");
    }

    #[test]
    fn rejects_malformed_yaml() {
        let err = parse("test", "kind: [unclosed\n").expect_err("bad yaml");
        assert!(matches!(err, ManifestError::Yaml { .. }), "{err}");
    }
}
