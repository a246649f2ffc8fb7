//! `conformance cluster up|status|load|down`: a kit or kind cluster for
//! people and scripts, made by the same provider the harness runs, so names,
//! labels, volumes, 127.0.0.1-only ports and the kubeconfig live in one
//! place. `up` leaves the cluster running (the kit's nodes started marked
//! for reuse, which testcontainers does not reap; kind's are kind's) once
//! the readiness gate passed, and writes its kubeconfig beside the kit;
//! `down` removes everything labelled with the name (kind: `kind delete
//! cluster` and the cluster's volume directory).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cbam_cluster::cluster::Cluster as _;
use cbam_cluster::docker::{self, DockerError};
use cbam_cluster::kind::{self, KindCluster, KindError, KindOptions};
use cbam_cluster::kit::{self, KitError};
use cbam_cluster::provider::{ClusterError, KitCluster, KitOptions, LABEL, registry_beside};
use cbam_cluster::readiness::{self, GateError};
use cbam_cluster::timeouts::Timeouts;
use clap::Subcommand;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use cbam_error_chain::render as chain;

use crate::exit_code::EXIT_ERROR;
use crate::provider::Cluster;

/// A kit or kind cluster in Docker, kept until `down`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: Action,
    /// Prefix of the cluster's containers, network and volumes.
    #[arg(long, global = true, default_value = "cbam-kit")]
    pub name: String,
    /// The provider: the kit's k3s-shaped nodes, or kind (the real kind CLI).
    #[arg(long, global = true, value_enum, default_value = "k3s")]
    pub cluster: Cluster,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// One server and --agents agents, through the readiness gate; prints the kubeconfig's path.
    Up {
        #[arg(long, default_value_t = 2)]
        agents: usize,
        /// The node image: the kit's (`just kit`) by default, or an upstream
        /// k3s image (rancher/k3s:TAG) or kind node image (kindest/node:TAG@DIGEST)
        /// where a registry has one.
        #[arg(long, value_name = "REF")]
        node_image: Option<String>,
    },
    /// The cluster's containers, nodes and system pods.
    Status,
    /// Serves OCI image archives to every node as one registry, as the harness
    /// serves its own (`just image` writes target/image/cbam-api.tar, cbam-tool.tar
    /// and the oci-registry beside them); each load replaces the last.
    Load {
        #[arg(required = true)]
        archives: Vec<PathBuf>,
    },
    /// Removes every container, volume and network labelled with the name, and its kubeconfig.
    Down,
}

#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error("the {0:?} provider has no cluster this command manages (an existing cluster is yours)")]
    Provider(Cluster),
    #[error(transparent)]
    Kind(#[from] KindError),
    #[error("reach the container engine (run `just engine`)")]
    NoEngine,
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error("find the node image {0} (run `just kit`)")]
    NodeImage(String),
    #[error("find {0} (run `just image`)")]
    Archive(PathBuf),
    #[error("no running node is labelled {LABEL}={0}")]
    NoNodes(String),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Cluster(Box<ClusterError>),
    #[error("the cluster did not pass the readiness gate (removed)")]
    Gate(#[source] Box<GateError>),
    #[error("write the kubeconfig {0}")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("read the kubeconfig {0} (is the cluster up?)")]
    Kubeconfig(PathBuf, #[source] Box<kube::config::KubeconfigError>),
    #[error("reach the cluster's API")]
    Api(#[source] Box<kube::Error>),
}

impl From<ClusterError> for CommandError {
    fn from(e: ClusterError) -> Self {
        CommandError::Cluster(Box::new(e))
    }
}

impl CommandError {
    /// 2 for what the caller can fix before trying (usage, input,
    /// environment); 1 for a cluster that failed.
    fn exit_code(&self) -> u8 {
        match self {
            CommandError::Gate(_) | CommandError::Cluster(_) | CommandError::Api(_) | CommandError::Kind(_) => 1,
            _ => EXIT_ERROR,
        }
    }
}

/// Where `up` writes the cluster's kubeconfig (as ci/kit/*.sh keep theirs).
pub fn kubeconfig_path(name: &str) -> PathBuf {
    kit::dir().join(format!("{name}.kubeconfig"))
}

/// Writes `text` readable by its owner only, whole or not at all.
fn write_private(path: &Path, text: &str) -> Result<(), CommandError> {
    let io = |e| CommandError::Write(path.to_owned(), e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let temp = path.with_extension("partial");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}

async fn up(name: &str, agents: usize, node_image: Option<&str>, t: &Timeouts) -> Result<(), CommandError> {
    if !docker::engine_reachable().await {
        return Err(CommandError::NoEngine);
    }
    let image = match node_image {
        Some(image) => image.to_owned(),
        None => kit::node_image()?,
    };
    if !docker::image_present(&image).await {
        return Err(CommandError::NodeImage(image));
    }
    let since = Instant::now();
    let opts = KitOptions {
        name: name.to_owned(),
        agents,
        image,
        timeouts: *t,
        reuse: false,
        keep: true,
        component_args: Vec::new(),
    };
    let cluster = KitCluster::up(&opts).await?;
    if let Err(e) = readiness::gate(&cluster, t).await {
        // A cluster that is not ready is not left behind (as the harness).
        KitCluster::sweep(name).await?;
        return Err(CommandError::Gate(Box::new(e)));
    }
    let path = kubeconfig_path(name);
    write_private(&path, &cluster.kubeconfig_yaml)?;
    eprintln!(
        "cluster: {name} up in {:.0} s ({} nodes): API https://127.0.0.1:{}, HTTP 127.0.0.1:{}, HTTPS 127.0.0.1:{}",
        since.elapsed().as_secs_f64(),
        cluster.nodes().len(),
        cluster.api_port,
        cluster.http_port,
        cluster.https_port
    );
    println!("{}", path.display());
    Ok(())
}

/// Where a kept kind cluster's ReadWriteMany volumes live on the host.
fn kind_storage(name: &str) -> PathBuf {
    kit::dir().join(format!("{name}.storage"))
}

/// kind's `up`: 1 control plane + AGENTS workers by the real kind CLI, the
/// addons installed and gated as the live tier's; removed again when the
/// gate fails.
async fn up_kind(name: &str, agents: usize, node_image: Option<&str>, t: &Timeouts) -> Result<(), CommandError> {
    if !docker::engine_reachable().await {
        return Err(CommandError::NoEngine);
    }
    // A published image given by reference is kind's to pull.
    let image = match node_image {
        Some(image) => image.to_owned(),
        None => {
            let image = kind::node_image()?;
            if !docker::image_present(&image).await {
                return Err(CommandError::NodeImage(image));
            }
            image
        }
    };
    let since = Instant::now();
    let opts = KindOptions {
        name: name.to_owned(),
        workers: agents,
        image,
        create_timeout: t.node_start * 3,
        kept_storage: Some(kind_storage(name)),
    };
    let cluster = KindCluster::up(&opts).await?;
    let created = since.elapsed();
    if let Err(e) = cluster.gate(t).await {
        cluster.down().await?;
        return Err(CommandError::Gate(Box::new(e)));
    }
    let path = kubeconfig_path(name);
    write_private(&path, &cluster.kubeconfig_yaml)?;
    // `just bench cluster` reads the two figures.
    eprintln!(
        "cluster: kind {name} up in {:.1} s (kind create and addons applied {:.1} s, then addons ready {:.1} s; {} nodes): HTTP 127.0.0.1:{}, HTTPS 127.0.0.1:{}",
        since.elapsed().as_secs_f64(),
        created.as_secs_f64(),
        (since.elapsed() - created).as_secs_f64(),
        cluster.nodes.len(),
        cluster.http_port,
        cluster.https_port
    );
    println!("{}", path.display());
    Ok(())
}

/// The label every node container of the provider's cluster NAME carries.
fn node_label(provider: Cluster) -> &'static str {
    match provider {
        Cluster::Kind => kind::CLUSTER_LABEL,
        _ => LABEL,
    }
}

/// The running containers labelled with the cluster's name.
async fn containers(label: &str, name: &str) -> Result<Vec<String>, CommandError> {
    let filter = format!("label={label}={name}");
    let out =
        docker::docker(&["ps", "--filter", &filter, "--filter", "status=running", "--format", "{{.Names}}"]).await?;
    let names: Vec<String> = out.lines().map(str::to_owned).collect();
    if names.is_empty() { Err(CommandError::NoNodes(name.to_owned())) } else { Ok(names) }
}

async fn status(label: &str, name: &str) -> Result<(), CommandError> {
    let filter = format!("label={label}={name}");
    print!("{}", docker::docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}\t{{.Status}}"]).await?);
    let path = kubeconfig_path(name);
    let unreadable = |e| CommandError::Kubeconfig(path.clone(), Box::new(e));
    let api = |e| CommandError::Api(Box::new(e));
    let kubeconfig = Kubeconfig::read_from(&path).map_err(unreadable)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(unreadable)?;
    let client = cbam_cluster::api_client::client(config).map_err(api)?;
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.map_err(api)?;
    for node in nodes {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map_or("Unknown", |c| if c.status == "True" { "Ready" } else { "NotReady" });
        println!("node {} {ready}", node.metadata.name.unwrap_or_default());
    }
    let pods = Api::<Pod>::namespaced(client, "kube-system").list(&ListParams::default()).await.map_err(api)?;
    for pod in pods {
        let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
        println!("pod kube-system/{} {phase}", pod.metadata.name.unwrap_or_default());
    }
    Ok(())
}

async fn load(label: &str, name: &str, archives: &[PathBuf], t: &Timeouts) -> Result<(), CommandError> {
    let archives: Vec<&Path> = archives.iter().map(PathBuf::as_path).collect();
    // The registry binary beside the first archive serves them all.
    let registry = registry_beside(archives[0]);
    for file in archives.iter().copied().chain([registry.as_path()]) {
        if !file.is_file() {
            return Err(CommandError::Archive(file.to_owned()));
        }
    }
    let nodes = containers(label, name).await?;
    for node in &nodes {
        cbam_cluster::node_exec::serve_image(node, &archives, &registry, t.node_component.as_secs().max(1)).await?;
    }
    let listed: Vec<String> = archives.iter().map(|a| a.display().to_string()).collect();
    eprintln!("cluster: serving {} to {} nodes of {name}", listed.join(", "), nodes.len());
    Ok(())
}

async fn down(provider: Cluster, name: &str) -> Result<(), CommandError> {
    if provider == Cluster::Kind {
        kind::delete_cluster(name).await?;
        kind::remove_dir(&kind_storage(name))?;
    } else {
        KitCluster::sweep(name).await?;
    }
    let path = kubeconfig_path(name);
    if path.exists() {
        std::fs::remove_file(&path).map_err(|e| CommandError::Write(path.clone(), e))?;
    }
    eprintln!("cluster: removed {name}");
    Ok(())
}

/// Runs the command; the exit code.
pub fn run(args: &ClusterArgs) -> u8 {
    let t = Timeouts::default();
    let (provider, label) = (args.cluster, node_label(args.cluster));
    let result = match provider {
        Cluster::K3s | Cluster::Kind => {
            match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt.block_on(async {
                    match &args.action {
                        Action::Up { agents, node_image } if provider == Cluster::Kind => {
                            up_kind(&args.name, *agents, node_image.as_deref(), &t).await
                        }
                        Action::Up { agents, node_image } => up(&args.name, *agents, node_image.as_deref(), &t).await,
                        Action::Status => status(label, &args.name).await,
                        Action::Load { archives } => load(label, &args.name, archives, &t).await,
                        Action::Down => down(provider, &args.name).await,
                    }
                }),
                Err(e) => {
                    eprintln!("error: {}", chain(&e));
                    return EXIT_ERROR;
                }
            }
        }
        other => Err(CommandError::Provider(other)),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            e.exit_code()
        }
    }
}
