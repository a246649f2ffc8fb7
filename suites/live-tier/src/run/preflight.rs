//! An existing cluster's preflight: before anything of the deployment is
//! applied, every need of the live checks (`Need`, a column of the check
//! table) is looked for at once, and all that is missing is reported
//! together. A check whose need is missing is then "not verified", naming
//! it; the others run. A cluster the harness creates has every need by its
//! readiness gate, and gets no preflight.
//!
//! Each need is read as the cluster is now (it is the user's, already
//! running): one read, no waiting, except the two things that start here:
//! the port-forward to the ingress controller answering, and a pod of the
//! tool image (in a namespace of its own, journalled and removed again),
//! which ends at once when the kubelet says the image cannot be pulled.

use std::collections::{BTreeMap, BTreeSet};

use cbam_cluster::readiness;
use cbam_cluster::timeouts::Timeouts;
use cbam_cluster::wait::{Poll, until};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use cbam_error_chain::render as chain;

use crate::catalog::{LiveCheck, Need};
use crate::journal::{self, Journal, Undo};
use crate::judges::container_start;
use crate::traffic::prober_pod::PROBER;

/// The namespace of the tool image's test pod.
pub(crate) const NAMESPACE: &str = "cbam-conformance-preflight";
const POD: &str = "tool-image";

/// What the preflight found missing, need by need.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Preflight {
    missing: BTreeMap<Need, String>,
}

impl Preflight {
    /// Nothing missing (a cluster the harness created and gated).
    pub(crate) fn complete() -> Self {
        Preflight::default()
    }

    pub(crate) fn with(missing: impl IntoIterator<Item = (Need, String)>) -> Self {
        Preflight { missing: missing.into_iter().collect() }
    }

    /// The first need of CHECK that is missing, with why.
    pub(crate) fn missing_for(&self, check: &LiveCheck) -> Option<(Need, &str)> {
        check.needs.iter().find_map(|n| self.missing.get(n).map(|why| (*n, why.as_str())))
    }

    /// One line per missing need, naming the checks it leaves unverified.
    pub(crate) fn notes(&self, checks: &[LiveCheck]) -> Vec<String> {
        self.missing
            .iter()
            .map(|(need, why)| {
                let ids: Vec<&str> = checks.iter().filter(|c| c.needs.contains(need)).map(|c| c.id).collect();
                format!("preflight: missing {}: {why}; not verified: {}", need.describe(), ids.join(", "))
            })
            .collect()
    }
}

/// Why a need is missing, as the cluster answered.
#[derive(Debug)]
pub(crate) struct Missing(String);

/// What the preflight needs to know of the run.
pub(crate) struct Ask<'a> {
    pub(crate) client: &'a Client,
    pub(crate) http_port: u16,
    /// The IngressClass the Ingresses are documented with (fixtures, not
    /// the overlay: a mutated class is the deployment's failure, not a
    /// missing need).
    pub(crate) ingress_classes: BTreeSet<String>,
    /// A namespace the run will use (where evictions are asked for).
    pub(crate) namespace: &'a str,
    pub(crate) tool_image: &'a str,
    pub(crate) journal: &'a Journal,
    pub(crate) timeouts: &'a Timeouts,
}

impl std::fmt::Debug for Ask<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask").field("tool_image", &self.tool_image).finish_non_exhaustive()
    }
}

/// Looks for every need at once.
pub(crate) async fn existing(ask: &Ask<'_>) -> Preflight {
    let (ingress, resource, custom, storage, eviction, tool) = tokio::join!(
        ingress(ask),
        api_service(ask.client, "v1beta1.metrics.k8s.io"),
        api_service(ask.client, "v1beta1.custom.metrics.k8s.io"),
        default_storage(ask.client),
        eviction(ask.client, ask.namespace),
        tool_image(ask),
    );
    Preflight::with(
        [
            (Need::Ingress, ingress),
            (Need::ResourceMetrics, resource),
            (Need::CustomMetrics, custom),
            (Need::DefaultStorage, storage),
            (Need::Eviction, eviction),
            (Need::ToolImage, tool),
        ]
        .into_iter()
        .filter_map(|(need, found)| found.err().map(|why| (need, why.0))),
    )
}

async fn ingress(ask: &Ask<'_>) -> Result<(), Missing> {
    let classes: Api<IngressClass> = Api::all(ask.client.clone());
    let have: BTreeSet<String> = match classes.list(&ListParams::default()).await {
        Ok(list) => list.items.into_iter().filter_map(|c| c.metadata.name).collect(),
        Err(e) => return Err(Missing(format!("list IngressClasses: {}", chain(&e)))),
    };
    let absent: Vec<&String> = ask.ingress_classes.difference(&have).collect();
    if !absent.is_empty() {
        let have: Vec<&String> = have.iter().collect();
        return Err(Missing(format!("no IngressClass {absent:?} (the cluster has {have:?})")));
    }
    readiness::ingress_serving(ask.client, ask.http_port, ask.timeouts, ask.timeouts.preflight, false)
        .await
        .map_err(|e| Missing(chain(&e)))
}

async fn api_service(client: &Client, name: &str) -> Result<(), Missing> {
    match readiness::api_service_available(client, name).await {
        Poll::Done(()) => Ok(()),
        Poll::Pending(seen) | Poll::Refused(seen) => Err(Missing(seen)),
    }
}

async fn default_storage(client: &Client) -> Result<(), Missing> {
    let api: Api<StorageClass> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) if list.items.iter().any(readiness::is_default_class) => Ok(()),
        Ok(list) => Err(Missing(format!("{} StorageClasses, none marked default", list.items.len()))),
        Err(e) => Err(Missing(format!("list StorageClasses: {}", chain(&e)))),
    }
}

/// The access review of one verb on one resource.
fn review(verb: &str, resource: &str, subresource: Option<&str>, namespace: Option<&str>) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(Into::into),
                namespace: namespace.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    }
}

async fn eviction(client: &Client, namespace: &str) -> Result<(), Missing> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let asks = [
        ("create pods/eviction", review("create", "pods", Some("eviction"), Some(namespace))),
        ("patch nodes", review("patch", "nodes", None, None)),
    ];
    let mut denied = Vec::new();
    for (what, ask) in asks {
        match api.create(&PostParams::default(), &ask).await {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => denied.push(format!("{what} denied")),
            Err(e) => denied.push(format!("{what}: {}", chain(&e))),
        }
    }
    if denied.is_empty() { Ok(()) } else { Err(Missing(denied.join("; "))) }
}

/// The tool image's test pod: restricted like every tool pod, runs the
/// binary once (`idle --seconds 0`), and must succeed.
fn test_pod(image: &str) -> Result<Pod, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NAMESPACE},
        "spec": {
            "automountServiceAccountToken": false,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "tool", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": [PROBER, "idle", "--seconds", "0"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
}

/// How the test pod reads: done when it succeeded, refused at once when its
/// container cannot start or failed.
pub(crate) fn test_pod_state(pod: &Pod) -> Poll<()> {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
    match container_start::reading(container_start::first_state(pod)) {
        Ok(true) => Poll::Done(()),
        Err(failure) => Poll::Refused(failure.to_string()),
        Ok(false) if phase == "Failed" => Poll::Refused("the pod failed".into()),
        Ok(false) => Poll::Pending(format!("phase {phase}")),
    }
}

async fn tool_image(ask: &Ask<'_>) -> Result<(), Missing> {
    let namespaces: Api<Namespace> = Api::all(ask.client.clone());
    match namespaces.get_opt(NAMESPACE).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Err(Missing(format!("namespace {NAMESPACE} exists already (not made by this run; left alone)")));
        }
        Err(e) => return Err(Missing(format!("read namespace {NAMESPACE}: {}", chain(&e)))),
    }
    let undo = Undo::DeleteNamespace { name: NAMESPACE.to_owned() };
    ask.journal.record(undo.clone()).map_err(|e| Missing(chain(&e)))?;
    let found = run_test_pod(ask).await;
    match journal::delete_namespace(ask.client, NAMESPACE, ask.timeouts.namespace_cleanup).await {
        Ok(()) => ask.journal.done(&undo).map_err(|e| Missing(chain(&e)))?,
        // Kept in the journal: the run's cleanup tries again and reports it.
        Err(e) => {
            let pod = found.err().map_or_else(|| "the test pod succeeded".to_owned(), |m| m.0);
            return Err(Missing(format!("{pod}; then failed to remove namespace {NAMESPACE}: {}", chain(&e))));
        }
    }
    found.map_err(|why| Missing(format!("image {}: {}", ask.tool_image, why.0)))
}

async fn run_test_pod(ask: &Ask<'_>) -> Result<(), Missing> {
    let namespaces: Api<Namespace> = Api::all(ask.client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))
        .map_err(|e| Missing(format!("build namespace {NAMESPACE}: {e}")))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .map_err(|e| Missing(format!("create namespace {NAMESPACE}: {}", chain(&e))))?;
    let pods: Api<Pod> = Api::namespaced(ask.client.clone(), NAMESPACE);
    let pod = test_pod(ask.tool_image).map_err(|e| Missing(format!("build the test pod: {e}")))?;
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|e| Missing(format!("create the test pod: {}", chain(&e))))?;
    let condition = format!("the tool image's test pod {NAMESPACE}/{POD} succeeded");
    until(&condition, ask.timeouts.preflight, || async {
        match pods.get(POD).await {
            Ok(p) => test_pod_state(&p),
            Err(e) => Poll::failed(e.to_string(), &e),
        }
    })
    .await
    .map_err(|e| Missing(e.last().to_owned()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStateWaiting};

    use super::*;
    use crate::catalog::{Order, Role, Scope};
    use crate::judges::container_start::pod_in as pod;

    #[test]
    fn the_test_pod_is_refused_at_once_when_its_image_cannot_be_pulled() {
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ErrImagePull".into()),
                message: Some("dial tcp: lookup cbam-conformance.invalid: no such host".into()),
            }),
            ..ContainerState::default()
        };
        match test_pod_state(&pod("Pending", Some(waiting))) {
            Poll::Refused(said) => assert!(said.starts_with("ErrImagePull: dial tcp"), "{said}"),
            other => panic!("{other:?}"),
        }
        let done = ContainerState {
            terminated: Some(ContainerStateTerminated { exit_code: 0, ..ContainerStateTerminated::default() }),
            ..ContainerState::default()
        };
        assert!(matches!(test_pod_state(&pod("Succeeded", Some(done))), Poll::Done(())));
        assert!(matches!(test_pod_state(&pod("Pending", None)), Poll::Pending(_)));
    }

    const ROW: LiveCheck = LiveCheck {
        id: "live-x",
        about: "",
        scope: Scope::Every,
        role: Role::NeedsRollout,
        order: Order::Free,
        nightly_only: false,
        needs: &[Need::Ingress, Need::ToolImage],
        run: |_, _| Box::pin(async {}),
    };

    #[test]
    fn a_missing_need_leaves_exactly_the_checks_that_need_it_unverified() {
        let other = LiveCheck { id: "live-y", needs: &[Need::DefaultStorage], ..ROW };
        let found = Preflight::with([(Need::ToolImage, "ErrImagePull: no such host".to_owned())]);
        assert_eq!(found.missing_for(&ROW), Some((Need::ToolImage, "ErrImagePull: no such host")));
        assert_eq!(found.missing_for(&other), None);
        assert_eq!(
            found.notes(&[ROW, other]),
            [
                "preflight: missing the harness's tool image running on the nodes: ErrImagePull: no such host; not verified: live-x"
            ]
        );
        assert_eq!(Preflight::complete().missing_for(&ROW), None);
    }
}
