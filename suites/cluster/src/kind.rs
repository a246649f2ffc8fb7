//! kind clusters (issue 29): the real kind CLI (ci/versions.env KIND_VERSION,
//! installed with the tools) creates, joins and deletes the nodes, on the
//! kind node image ci/kit builds offline (`kind-node-image` in the kit) or,
//! online, a published `kindest/node` given by reference: one code path.
//!
//! `up` installs the harness's platform addons (ci/addons), as the kit's
//! provider does. What the run makes it removes: the cluster (`kind delete
//! cluster`), and the `kind` Docker network when no kind cluster used it
//! before the run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::process::Command;

use crate::docker::{self, DockerError};
use crate::kit::{self, KitError};
use crate::node_exec::{self, NodeProgram};
use crate::wait::Poll;

/// The Docker network kind puts every cluster on.
pub const NETWORK: &str = "kind";
/// The label kind puts on each node container: its cluster's name.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// Whether an answer to KUBELET_HEALTHZ says healthy: status 200, body "ok".
fn kubelet_healthy(answer: &str) -> bool {
    let status_ok = answer.lines().next().is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    status_ok && answer.lines().last().map(str::trim) == Some("ok")
}

/// Bound on `kind delete cluster`: removing 3 node containers and their
/// volumes takes seconds; two minutes means a stuck engine.
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error("run kind {args}")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run kind {args}: exit {code:?}: {said}")]
    Failed { args: String, code: Option<i32>, said: String },
    #[error("run kind {args}: no answer after {timeout:?}")]
    TimedOut { args: String, timeout: Duration },
    #[error("write the kind cluster's configuration")]
    Config(#[source] std::io::Error),
    #[error("read kind's kubeconfig for {name}")]
    Kubeconfig {
        name: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("build a client for the kind cluster {name}")]
    Client {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("inspect Docker")]
    Docker(#[from] DockerError),
    #[error("find the kind node image")]
    Kit(#[from] KitError),
    #[error("install the platform addons")]
    Addons(#[from] crate::addons::AddonError),
    #[error("stop the kubelet of {node}: systemd still says {state}")]
    KubeletRestart { node: String, state: String },
    #[error("restart the kubelet of {node}")]
    KubeletUnhealthy {
        node: String,
        #[source]
        source: crate::wait::WaitError,
    },
}

/// The kind node image `just kit` recorded (ci/kit/build-kind-node.sh).
pub fn node_image() -> Result<String, KitError> {
    kit::recorded_image("kind-node-image")
}

#[derive(Debug, Clone)]
pub struct KindOptions {
    /// kind's cluster name (node containers are NAME-control-plane, NAME-worker, ...).
    pub name: String,
    pub workers: usize,
    /// A node image: the kit's, or `kindest/node:vX@sha256:...` online.
    pub image: String,
    /// Bound on `kind create cluster` (nodes up, kubeadm init and joins).
    pub create_timeout: Duration,
    /// The host directory of ReadWriteMany volumes for a cluster kept after
    /// the process (`conformance cluster up`); None: a temporary one,
    /// removed with the cluster.
    pub kept_storage: Option<PathBuf>,
}

/// Where every node mounts the one host directory of ReadWriteMany volumes
/// (the local-path addon's shared path, as on the kit).
pub const STORAGE_PATH: &str = "/var/lib/cbam/storage";

/// What a node image says of the images it carries, in the labels
/// ci/kit/build-kind-node.sh gives it: each image there is tagged with the
/// version it contains, and where kubeadm or kind's containerd would ask
/// for another tag the label names the one to ask for. A published
/// `kindest/node` has none of these labels: kind's own defaults stand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeImageTags {
    /// kubeadm's `etcd.local.imageTag`.
    pub etcd: Option<String>,
    /// kubeadm's `dns.imageTag` (CoreDNS).
    pub dns: Option<String>,
    /// containerd's sandbox (pause) image.
    pub sandbox: Option<String>,
}

/// The labels of IMAGE; none when the engine does not have it yet (kind
/// pulls a published image itself, and a published image has none).
pub async fn node_image_tags(image: &str) -> Result<NodeImageTags, KindError> {
    if !docker::image_present(image).await {
        return Ok(NodeImageTags::default());
    }
    Ok(NodeImageTags {
        etcd: docker::image_label(image, "cbam.io/kubeadm-etcd-image-tag").await?,
        dns: docker::image_label(image, "cbam.io/kubeadm-dns-image-tag").await?,
        sandbox: docker::image_label(image, "cbam.io/sandbox-image").await?,
    })
}

/// What the cluster's configuration adapts to: the node image's labels and
/// the host.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    pub tags: NodeImageTags,
    /// The host cannot grant CAP_SYS_RESOURCE (its capability bounding set
    /// lacks it): a node cannot lower a pod's OOM score below its own.
    pub restrict_oom_score_adj: bool,
}

impl NodeFacts {
    /// IMAGE's labels, and this process's bounding set, which is the
    /// engine's host's: node containers get no capability it lacks.
    pub async fn of(image: &str) -> Result<NodeFacts, KindError> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Ok(NodeFacts { tags: node_image_tags(image).await?, restrict_oom_score_adj: lacks_sys_resource(&status) })
    }
}

/// CAP_SYS_RESOURCE's bit in a capability mask.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether /proc/self/status text STATUS shows a bounding set without
/// CAP_SYS_RESOURCE (an unreadable status: assume it is there, as kind does).
fn lacks_sys_resource(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << CAP_SYS_RESOURCE) == 0)
}

/// A TOML basic string holding TEXT: JSON's string escapes are all TOML's.
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// kind's `containerdConfigPatches` (merged into the node's containerd
/// config, kind's base config format): registry hosts from
/// /etc/containerd/certs.d always, which kind documents as the way to
/// configure registries and `serve_image` writes; the sandbox image the node
/// image names; and, on a host without CAP_SYS_RESOURCE, containerd's
/// restrict_oom_score_adj, as kind's own entrypoint sets it where a node
/// cannot lower OOM scores (rootless).
fn containerd_patches(facts: &NodeFacts) -> Vec<String> {
    const CRI: &str = "[plugins.\"io.containerd.grpc.v1.cri\"]";
    let mut patches = vec![format!(
        "{CRI}\n  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = \"/etc/containerd/certs.d\"\n"
    )];
    if let Some(image) = &facts.tags.sandbox {
        patches.push(format!("{CRI}\n  sandbox_image = {}\n", toml_string(image)));
    }
    if facts.restrict_oom_score_adj {
        patches.push(format!("{CRI}\n  restrict_oom_score_adj = true\n"));
    }
    patches
}

/// The cluster's configuration, as data: one control plane, labelled as the
/// kit's server (the ingress controller's node: ci/addons select it), with
/// HTTP and HTTPS published on 127.0.0.1 at ports kind picks, and the
/// workers; the API server on 127.0.0.1 only; STORAGE (a host directory)
/// mounted into every node at STORAGE_PATH; kubeadm and containerd told what
/// FACTS say.
pub fn config(opts: &KindOptions, storage: &Path, facts: &NodeFacts) -> serde_json::Value {
    let mount = serde_json::json!([{"hostPath": path(storage), "containerPath": STORAGE_PATH}]);
    let ports: Vec<serde_json::Value> = [80, 443]
        .iter()
        .map(|port| serde_json::json!({"containerPort": port, "hostPort": 0, "listenAddress": "127.0.0.1"}))
        .collect();
    let mut nodes = vec![serde_json::json!({
        "role": "control-plane",
        "labels": {"cbam.io/role": "server"},
        "extraPortMappings": ports,
        "extraMounts": mount,
    })];
    nodes.extend(
        (0..opts.workers)
            .map(|_| serde_json::json!({"role": "worker", "labels": {"cbam.io/role": "agent"}, "extraMounts": mount})),
    );
    // The API server reaches aggregated APIs (metrics, custom metrics) at
    // their endpoints, as the kit's does: through the Service's ClusterIP it
    // got an empty 404 here (metrics API "not available" though its
    // APIService said Available); cause not found.
    // kind v0.33 writes kubeadm's v1beta3 for 1.34 (extraArgs a map) and
    // matches a patch without apiVersion by its kind.
    let mut cluster_configuration = serde_json::json!({
        "kind": "ClusterConfiguration",
        "apiServer": {"extraArgs": {"enable-aggregator-routing": "true"}},
    });
    if let Some(tag) = &facts.tags.etcd {
        cluster_configuration["etcd"] = serde_json::json!({"local": {"imageTag": tag}});
    }
    if let Some(tag) = &facts.tags.dns {
        cluster_configuration["dns"] = serde_json::json!({"imageTag": tag});
    }
    serde_json::json!({
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"apiServerAddress": "127.0.0.1"},
        // kind reads each patch as YAML; JSON is YAML.
        "kubeadmConfigPatches": [cluster_configuration.to_string()],
        "containerdConfigPatches": containerd_patches(facts),
        "nodes": nodes,
    })
}

/// Where the cluster's ReadWriteMany volumes live on the host.
enum Storage {
    /// Removed with the cluster (`down`).
    Temporary(tempfile::TempDir),
    /// Outlives the process; `conformance cluster down` removes it.
    Kept(PathBuf),
}

impl Storage {
    fn path(&self) -> &Path {
        match self {
            Storage::Temporary(dir) => dir.path(),
            Storage::Kept(dir) => dir,
        }
    }
}

pub struct KindCluster {
    pub name: String,
    pub client: Client,
    /// The kubeconfig `kind create` wrote (API server on 127.0.0.1), for
    /// `conformance cluster up` to keep.
    pub kubeconfig_yaml: String,
    /// Node container names (= Kubernetes node names).
    pub nodes: Vec<String>,
    /// Host ports publishing the control plane's 80 and 443 (127.0.0.1).
    pub http_port: u16,
    pub https_port: u16,
    /// The host directory every node mounts at STORAGE_PATH.
    storage: Storage,
    /// The `kind` network did not exist before: `down` removes it when no
    /// other kind cluster uses it.
    made_network: bool,
}

impl std::fmt::Debug for KindCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindCluster").field("name", &self.name).field("nodes", &self.nodes).finish_non_exhaustive()
    }
}

/// Runs the kind CLI with ARGS within TIMEOUT; stdout, or its error with the
/// last lines it said.
async fn kind(args: &[&str], timeout: Duration) -> Result<String, KindError> {
    let joined = args.join(" ");
    let run = Command::new("kind").args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| KindError::TimedOut { args: joined.clone(), timeout })?
        .map_err(|source| KindError::Spawn { args: joined.clone(), source })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    Err(KindError::Failed { args: joined, code: out.status.code(), said: said.join(" | ") })
}

async fn network_exists() -> Result<bool, DockerError> {
    let names = docker::docker(&["network", "ls", "--format", "{{.Name}}"]).await?;
    Ok(names.lines().any(|n| n == NETWORK))
}

/// The node containers of every kind cluster.
async fn kind_containers(name: Option<&str>) -> Result<Vec<String>, DockerError> {
    let filter = match name {
        Some(name) => format!("label={CLUSTER_LABEL}={name}"),
        None => format!("label={CLUSTER_LABEL}"),
    };
    let out = docker::docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]).await?;
    Ok(out.lines().map(str::to_owned).collect())
}

impl KindCluster {
    /// `kind create cluster` with the options; on failure the cluster is
    /// deleted again and kind's last words returned.
    pub async fn up(opts: &KindOptions) -> Result<KindCluster, KindError> {
        // A cluster of this name left by a killed run (SIGKILL leaves no
        // chance to delete it) would make kind refuse the name.
        if !kind_containers(Some(&opts.name)).await?.is_empty() {
            delete_cluster(&opts.name).await?;
        }
        let made_network = !network_exists().await?;
        let dir = tempfile::tempdir().map_err(KindError::Config)?;
        let storage = match &opts.kept_storage {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(KindError::Config)?;
                Storage::Kept(dir.clone())
            }
            None => Storage::Temporary(tempfile::tempdir().map_err(KindError::Config)?),
        };
        let config_file = dir.path().join("kind.json");
        let kubeconfig = dir.path().join("kubeconfig");
        let facts = NodeFacts::of(&opts.image).await?;
        let text = serde_json::to_vec_pretty(&config(opts, storage.path(), &facts))
            .map_err(|e| KindError::Config(e.into()))?;
        std::fs::write(&config_file, text).map_err(KindError::Config)?;
        // Everything from the create on: on any failure the cluster is deleted.
        let made = async {
            let create = [
                "create",
                "cluster",
                "--name",
                &opts.name,
                "--image",
                &opts.image,
                "--config",
                path(&config_file),
                "--kubeconfig",
                path(&kubeconfig),
            ];
            kind(&create, opts.create_timeout).await?;
            let kubeconfig_yaml = std::fs::read_to_string(&kubeconfig).map_err(KindError::Config)?;
            let client = client(&opts.name, &kubeconfig_yaml).await?;
            let mut nodes = kind_containers(Some(&opts.name)).await?;
            nodes.sort();
            let control_plane = format!("{}-control-plane", opts.name);
            let http_port = published(&control_plane, 80).await?;
            let https_port = published(&control_plane, 443).await?;
            // Every node takes workloads, as the kit's server does: the same
            // three nodes for the app on both providers (kind taints its
            // control plane; a drain then left one node for every pod).
            untaint_control_plane(&client, &control_plane).await?;
            // Each node's conntrack forgets an unanswered attempt as a kit
            // node's does (provider::SYN_SENT_SECONDS says why); kind creates
            // its containers without sysctls, so it is set in each (a
            // per-network-namespace value: the host keeps its own).
            let sysctl = format!("{}={}", crate::provider::SYN_SENT_SYSCTL, crate::provider::SYN_SENT_SECONDS);
            for node in &nodes {
                node_exec::run(node, NodeProgram::Sysctl, &["-w", &sysctl]).await?;
            }
            // The harness's platform layer, as on the kit (images in the node image).
            crate::addons::install(&client, crate::addons::Provisioner::NodeImage).await?;
            Ok::<_, KindError>(KindCluster {
                name: opts.name.clone(),
                client,
                kubeconfig_yaml,
                nodes,
                http_port,
                https_port,
                storage,
                made_network,
            })
        };
        match made.await {
            Ok(cluster) => Ok(cluster),
            Err(e) => {
                let _ = delete(&opts.name, made_network).await;
                Err(e)
            }
        }
    }

    /// An image archive (`docker save` format) into every node's containerd,
    /// as `kind load image-archive` does.
    pub async fn load_image_archive(&self, archive: &Path, timeout: Duration) -> Result<(), KindError> {
        kind(&["load", "image-archive", path(archive), "--name", &self.name], timeout).await.map(|_| ())
    }

    /// `kind export logs`: every node's kubelet and containerd journals,
    /// pod logs and inspection, under DIR.
    pub async fn export_logs(&self, dir: &Path, timeout: Duration) -> Result<(), KindError> {
        kind(&["export", "logs", path(dir), "--name", &self.name], timeout).await.map(|_| ())
    }

    /// The worker nodes (every node but the control plane), by name.
    pub fn workers(&self) -> Vec<String> {
        let control_plane = format!("{}-control-plane", self.name);
        self.nodes.iter().filter(|n| **n != control_plane).cloned().collect()
    }

    /// A drained node's kubelet stopped and started again, as an in-place
    /// upgrade does when it swaps the kubelet package (kubeadm's "upgrade
    /// worker nodes": drain, upgrade kubelet, restart it, uncordon): stopped
    /// (systemd says inactive), started, and serving its health endpoint
    /// again, within TIMEOUT. Its Node's Ready is the caller's to wait for.
    pub async fn restart_kubelet(&self, node: &str, timeout: Duration) -> Result<(), KindError> {
        node_exec::run(node, NodeProgram::Systemctl, &["stop", "kubelet"]).await?;
        // `is-active` exits non-zero for a stopped unit, with its state.
        if let Ok(active) = node_exec::run(node, NodeProgram::Systemctl, &["is-active", "kubelet"]).await {
            return Err(KindError::KubeletRestart { node: node.to_owned(), state: active.trim().to_owned() });
        }
        node_exec::run(node, NodeProgram::Systemctl, &["start", "kubelet"]).await?;
        // The kubelet's own health endpoint (kind's kubelet configuration
        // keeps the default port), asked with bash's /dev/tcp under
        // `timeout`. The last answer is reported on timeout.
        let healthz = ["2", NodeProgram::Bash.name(), "-c", node_exec::KUBELET_HEALTHZ];
        crate::wait::until(&format!("the kubelet of {node} healthy"), timeout, || async {
            match node_exec::run(node, NodeProgram::Timeout, &healthz).await {
                Ok(said) if kubelet_healthy(&said) => Poll::Done(()),
                Ok(said) => Poll::Pending(said.lines().next().unwrap_or_default().to_owned()),
                Err(e) => Poll::Pending(e.to_string()),
            }
        })
        .await
        .map_err(|source| KindError::KubeletUnhealthy { node: node.to_owned(), source })
    }

    /// `kind delete cluster`, and the `kind` network if this run made it and
    /// no kind cluster is left on it.
    pub async fn down(self) -> Result<(), KindError> {
        delete(&self.name, self.made_network).await?;
        // The volumes' files, written by pods as root.
        match self.storage {
            Storage::Temporary(dir) => dir.close().map_err(KindError::Config),
            Storage::Kept(dir) => remove_dir(&dir),
        }
    }
}

/// The taint kubeadm gives a control plane (kind keeps it on a cluster with
/// workers).
const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// Removes CONTROL_PLANE_TAINT from NODE.
async fn untaint_control_plane(client: &Client, node: &str) -> Result<(), KindError> {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams};
    let nodes: Api<Node> = Api::all(client.clone());
    let failed = |source| KindError::Client { name: node.to_owned(), source };
    let current = nodes.get(node).await.map_err(failed)?;
    let taints: Vec<_> = current
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key != CONTROL_PLANE_TAINT)
        .collect();
    let patch = serde_json::json!({"spec": {"taints": taints}});
    nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(failed)?;
    Ok(())
}

/// The host port on 127.0.0.1 that publishes PORT of CONTAINER.
async fn published(container: &str, port: u16) -> Result<u16, KindError> {
    let out = docker::docker(&["port", container, &format!("{port}/tcp")]).await?;
    out.lines().find_map(|l| l.strip_prefix("127.0.0.1:").and_then(|p| p.trim().parse().ok())).ok_or_else(|| {
        KindError::Failed {
            args: format!("docker port {container} {port}/tcp"),
            code: None,
            said: format!("no 127.0.0.1 binding: {out}"),
        }
    })
}

/// `kind delete cluster --name NAME` (nothing to do for a name with no
/// cluster).
pub async fn delete_cluster(name: &str) -> Result<(), KindError> {
    kind(&["delete", "cluster", "--name", name], DELETE_TIMEOUT).await.map(|_| ())
}

/// Removes DIR and everything in it; nothing to do when it is gone.
pub fn remove_dir(dir: &Path) -> Result<(), KindError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KindError::Config(e)),
        _ => Ok(()),
    }
}

async fn delete(name: &str, made_network: bool) -> Result<(), KindError> {
    delete_cluster(name).await?;
    if made_network && kind_containers(None).await?.is_empty() && network_exists().await? {
        docker::docker(&["network", "rm", NETWORK]).await?;
    }
    Ok(())
}

async fn client(name: &str, kubeconfig_yaml: &str) -> Result<Client, KindError> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml)
        .map_err(|source| KindError::Kubeconfig { name: name.to_owned(), source })?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| KindError::Kubeconfig { name: name.to_owned(), source })?;
    crate::api_client::client(config).map_err(|source| KindError::Client { name: name.to_owned(), source })
}

/// A path as kind's argument (the temporary directory's and the kit's are
/// UTF-8; anything else is refused by kind as a missing file, naming it).
fn path(p: &Path) -> &str {
    p.to_str().unwrap_or("<not UTF-8>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelet_is_healthy_only_on_200_ok() {
        assert!(kubelet_healthy("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok"));
        assert!(!kubelet_healthy("HTTP/1.0 500 Internal Server Error\r\n\r\nok"));
        assert!(!kubelet_healthy("HTTP/1.0 200 OK\r\n\r\n[-]syncloop failed"));
        assert!(!kubelet_healthy(""));
    }

    #[test]
    fn the_config_names_one_control_plane_the_workers_and_loopback() {
        let opts = KindOptions {
            name: "c".into(),
            workers: 2,
            image: "i".into(),
            create_timeout: Duration::from_secs(1),
            kept_storage: None,
        };
        let config = config(&opts, Path::new("/srv/storage"), &NodeFacts::default());
        let roles: Vec<&str> =
            config["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["role"].as_str()).collect();
        assert_eq!(roles, ["control-plane", "worker", "worker"]);
        assert_eq!(config["networking"]["apiServerAddress"], "127.0.0.1");
        assert_eq!(config["nodes"][0]["labels"]["cbam.io/role"], "server");
        for node in config["nodes"].as_array().expect("nodes") {
            assert_eq!(node["extraMounts"][0]["hostPath"], "/srv/storage");
        }
        let ports = &config["nodes"][0]["extraPortMappings"];
        assert_eq!(ports[0]["listenAddress"], "127.0.0.1");
        assert_eq!(ports[1]["containerPort"], 443);
        // A published image, a host with every capability: only certs.d.
        assert_eq!(config["containerdConfigPatches"].as_array().map(Vec::len), Some(1));
        assert!(!config["kubeadmConfigPatches"][0].as_str().is_some_and(|p| p.contains("imageTag")));
    }

    fn options() -> KindOptions {
        KindOptions {
            name: "c".into(),
            workers: 0,
            image: "i".into(),
            create_timeout: Duration::from_secs(1),
            kept_storage: None,
        }
    }

    /// Tags that look like numbers, booleans or TOML/JSON syntax stay the
    /// strings they are in both patches.
    #[test]
    fn the_node_images_tags_reach_kubeadm_and_containerd_as_strings() {
        for hostile in ["3.10", "true", "1e3", "a\"b\\c\n[x]", "'q'"] {
            let facts = NodeFacts {
                tags: NodeImageTags {
                    etcd: Some(hostile.into()),
                    dns: Some(hostile.into()),
                    sandbox: Some(hostile.into()),
                },
                restrict_oom_score_adj: true,
            };
            let config = config(&options(), Path::new("/s"), &facts);
            let kubeadm: serde_json::Value =
                serde_norway::from_str(config["kubeadmConfigPatches"][0].as_str().expect("a patch")).expect("YAML");
            assert_eq!(kubeadm["etcd"]["local"]["imageTag"], hostile);
            assert_eq!(kubeadm["dns"]["imageTag"], hostile);
            let patches: Vec<toml_edit::DocumentMut> = config["containerdConfigPatches"]
                .as_array()
                .expect("patches")
                .iter()
                .map(|p| p.as_str().expect("text").parse().expect("TOML"))
                .collect();
            let cri = |doc: &toml_edit::DocumentMut| doc["plugins"]["io.containerd.grpc.v1.cri"].clone();
            assert_eq!(cri(&patches[0])["registry"]["config_path"].as_str(), Some("/etc/containerd/certs.d"));
            assert_eq!(cri(&patches[1])["sandbox_image"].as_str(), Some(hostile));
            assert_eq!(cri(&patches[2])["restrict_oom_score_adj"].as_bool(), Some(true));
        }
    }

    #[test]
    fn a_bounding_set_without_cap_sys_resource_is_seen() {
        assert!(lacks_sys_resource("Name:\tx\nCapBnd:\t000001fffeffffff\n"));
        assert!(!lacks_sys_resource("CapBnd:\t000001ffffffffff\n"));
        assert!(!lacks_sys_resource("no such line"));
    }
}
