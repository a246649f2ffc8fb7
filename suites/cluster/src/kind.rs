//! kind clusters (issue 29): the real kind CLI (ci/versions.env KIND_VERSION,
//! installed with the tools) creates, joins and deletes the nodes, on the
//! kind node image ci/kit builds offline (`kind-node-image` in the kit) or,
//! online, a published `kindest/node` given by reference: one code path.
//!
//! What the run makes it removes: the cluster (`kind delete cluster`), and
//! the `kind` Docker network when no kind cluster used it before the run.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::process::Command;

use crate::docker::{self, DockerError};
use crate::kit::{self, KitError};

/// The Docker network kind puts every cluster on.
pub const NETWORK: &str = "kind";
/// The label kind puts on each node container: its cluster's name.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";

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
}

/// The kind node image `just kit` recorded (ci/kit/build-kind-node.sh).
pub fn node_image() -> Result<String, KitError> {
    let path = kit::dir().join("kind-node-image");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or(KitError::NoNodeImage { path })
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
}

/// The cluster's configuration, as data: one control plane and the
/// workers, the API server on 127.0.0.1 only (kind's port is random).
pub fn config(opts: &KindOptions) -> serde_json::Value {
    let mut nodes = vec![serde_json::json!({"role": "control-plane"})];
    nodes.extend((0..opts.workers).map(|_| serde_json::json!({"role": "worker"})));
    serde_json::json!({
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"apiServerAddress": "127.0.0.1"},
        "nodes": nodes,
    })
}

pub struct KindCluster {
    pub name: String,
    pub client: Client,
    /// kind's kubeconfig (server https://127.0.0.1:PORT).
    pub kubeconfig_yaml: String,
    /// Node container names (= Kubernetes node names).
    pub nodes: Vec<String>,
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
        let made_network = !network_exists().await?;
        let dir = tempfile::tempdir().map_err(KindError::Config)?;
        let config_file = dir.path().join("kind.json");
        let kubeconfig = dir.path().join("kubeconfig");
        let text = serde_json::to_vec_pretty(&config(opts)).map_err(|e| KindError::Config(e.into()))?;
        std::fs::write(&config_file, text).map_err(KindError::Config)?;
        let created = kind(
            &[
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
            ],
            opts.create_timeout,
        )
        .await;
        if let Err(e) = created {
            let _ = delete(&opts.name, made_network).await;
            return Err(e);
        }
        let kubeconfig_yaml = match std::fs::read_to_string(&kubeconfig) {
            Ok(text) => text,
            Err(e) => {
                let _ = delete(&opts.name, made_network).await;
                return Err(KindError::Config(e));
            }
        };
        let client = client(&opts.name, &kubeconfig_yaml).await;
        let nodes = kind_containers(Some(&opts.name)).await;
        match (client, nodes) {
            (Ok(client), Ok(mut nodes)) => {
                nodes.sort();
                Ok(KindCluster { name: opts.name.clone(), client, kubeconfig_yaml, nodes, made_network })
            }
            (Err(e), _) => {
                let _ = delete(&opts.name, made_network).await;
                Err(e)
            }
            (_, Err(e)) => {
                let _ = delete(&opts.name, made_network).await;
                Err(e.into())
            }
        }
    }

    /// An image archive (`docker save` format) into every node's containerd,
    /// as `kind load image-archive` does.
    pub async fn load_image_archive(&self, archive: &Path, timeout: Duration) -> Result<(), KindError> {
        kind(&["load", "image-archive", path(archive), "--name", &self.name], timeout).await.map(|_| ())
    }

    /// `kind delete cluster`, and the `kind` network if this run made it and
    /// no kind cluster is left on it.
    pub async fn down(self) -> Result<(), KindError> {
        delete(&self.name, self.made_network).await
    }
}

async fn delete(name: &str, made_network: bool) -> Result<(), KindError> {
    kind(&["delete", "cluster", "--name", name], Duration::from_secs(120)).await?;
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
    Client::try_from(config).map_err(|source| KindError::Client { name: name.to_owned(), source })
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
    fn the_config_names_one_control_plane_the_workers_and_loopback() {
        let opts =
            KindOptions { name: "c".into(), workers: 2, image: "i".into(), create_timeout: Duration::from_secs(1) };
        let config = config(&opts);
        let roles: Vec<&str> =
            config["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["role"].as_str()).collect();
        assert_eq!(roles, ["control-plane", "worker", "worker"]);
        assert_eq!(config["networking"]["apiServerAddress"], "127.0.0.1");
    }
}
