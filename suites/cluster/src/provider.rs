//! A kit cluster: one server and N agents as privileged node containers on
//! a private Docker network (testcontainers), started through k3s's
//! container interface (crate::k3s: the kit's node image, or an upstream
//! k3s image), sharing a storage volume only; the API, HTTP and HTTPS ports
//! published for 127.0.0.1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt, ReuseDirective};

use crate::addons::{self, AddonError};
use crate::docker::{self, DockerError};
use crate::k3s::{self, K3sError, Role};
use crate::timeouts::Timeouts;

/// The server's ports the harness reaches: the API, HTTP and HTTPS ingress.
const PUBLISHED: [u16; 3] = [k3s::API_PORT, 80, 443];

/// A node container's host config. Nothing listens beyond loopback:
/// testcontainers publishes exposed ports on every interface, so the
/// server's ports are bound to 127.0.0.1 (a free port each) and agents
/// publish none. And the node's conntrack forgets an unanswered connection
/// attempt after [`SYN_SENT_SECONDS`] (see there).
fn node_host_config(host: &mut HostConfig, server: bool) {
    host.publish_all_ports = Some(false);
    let ports = if server { PUBLISHED.as_slice() } else { &[] };
    host.port_bindings = Some(
        ports
            .iter()
            .map(|p| {
                let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
                (format!("{p}/tcp"), Some(vec![binding]))
            })
            .collect(),
    );
    host.sysctls = Some([(SYN_SENT_SYSCTL.to_owned(), SYN_SENT_SECONDS.to_string())].into());
}

/// How long a node's conntrack keeps a connection attempt nobody answered
/// (the kernel's default is 120 s, renewed by every SYN on the same tuple).
/// kube-proxy removes a dead pod's endpoint but not the conntrack entries of
/// the attempts sent to it (it cleans those up for UDP only), so a client
/// whose new connection reuses such a source port is sent to the dead pod
/// again, with no new load-balancing decision, and times out long after the
/// endpoint is gone: measured under `live-node-loss`, every failure after
/// the endpoint went reused the source port of an earlier unanswered
/// attempt (docs/measurements.md, "Node loss"). 10 s: below the shortest
/// interval at which the prober's kernel came back to a source port (11.8 s
/// over 2,728 connections), so a stale entry is gone before its port comes
/// round; a slow handshake still keeps its entry across the SYN
/// retransmissions at 1, 3 and 7 s. A node setting, so platform work, not
/// the deployment's: DEPLOYMENT_GUIDE.md's Decisions say what a production
/// node pool needs.
pub const SYN_SENT_SECONDS: u32 = 10;
pub const SYN_SENT_SYSCTL: &str = "net.netfilter.nf_conntrack_tcp_timeout_syn_sent";

/// Every object a kit cluster creates carries this label, so a sweep can
/// remove what an interrupted run left behind.
pub const LABEL: &str = "cbam.io/kit-cluster";

/// The image label of a node run by the kit's supervisor (ci/kit/build.sh
/// sets it): only there are component states to read.
pub const SUPERVISOR_LABEL: &str = "cbam.io/node-supervisor";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("start node {node}: {said}")]
    NodeFailed { node: String, said: String },
    #[error("start node {node}")]
    Start {
        node: String,
        #[source]
        source: testcontainers::TestcontainersError,
    },
    #[error("read the published port {port} of {node}")]
    Port {
        node: String,
        port: u16,
        #[source]
        source: testcontainers::TestcontainersError,
    },
    #[error("read the cluster's kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("write the cluster's kubeconfig")]
    KubeconfigText(#[source] serde_norway::Error),
    #[error("build a client for the cluster")]
    Client(#[source] kube::Error),
    #[error("install the platform addons")]
    Addons(#[from] AddonError),
    #[error(transparent)]
    K3s(#[from] K3sError),
    #[error("read the server's join token: {TOKEN} is not a full token (K10<CA hash>::server:<password>)", TOKEN = k3s::TOKEN)]
    Token,
    #[error("start an agent: the task failed: {0}")]
    Join(String),
    #[error("remove the taint {JOINING_TAINT} from node {0}")]
    Untaint(String, #[source] kube::Error),
    #[error("{0} is not a worker of this cluster (the server is not replaced)")]
    NotAWorker(String),
    #[error("delete the Node object {0}")]
    DeleteNode(String, #[source] kube::Error),
    #[error("remove node {node}")]
    Remove {
        node: String,
        #[source]
        source: testcontainers::TestcontainersError,
    },
}

#[derive(Debug, Clone)]
pub struct KitOptions {
    /// Prefix of every container, network and volume name.
    pub name: String,
    pub agents: usize,
    /// The node image (`just kit` prints it).
    pub image: String,
    pub timeouts: Timeouts,
    /// Keep the cluster after the run and attach to it on the next one
    /// (the name then comes from `reuse_name`).
    pub reuse: bool,
    /// Leave the cluster running when this process ends (`conformance
    /// cluster up`; implied by `reuse`): its nodes are started marked for
    /// reuse, which testcontainers declines to remove when their handles go.
    pub keep: bool,
    /// Extra arguments per component, e.g. ("kube-proxy", "--v=4"): k3s's
    /// `--COMPONENT-arg` flags (crate::k3s::command).
    pub component_args: Vec<(String, String)>,
}

/// The image archives to serve to a node (the application's, the
/// harness's tool image), with the registry that serves them.
#[derive(Debug, Clone, Copy)]
pub struct ServedImage<'a> {
    pub archives: &'a [&'a Path],
    /// The `oci-registry` binary (`registry_beside`).
    pub registry: &'a Path,
    pub timeout: Duration,
}

/// Removes [`JOINING_TAINT`] from a node (a JSON patch of its taints, as
/// data: the other taints kept).
async fn untaint(client: &Client, node: &str) -> Result<(), kube::Error> {
    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let current = api.get(node).await?;
    let taints: Vec<_> = current
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key != JOINING_TAINT)
        .collect();
    let patch = serde_json::json!({"spec": {"taints": taints}});
    api.patch(node, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.map(drop)
}

/// The registry binary that serves an image archive to the nodes: `just
/// image` writes it beside the archive.
pub fn registry_beside(archive: &Path) -> PathBuf {
    archive.with_file_name("oci-registry")
}

/// The name of a reusable cluster, keyed by its configuration: the node
/// image's content tag (the kit's end in 12 hex digits of it) or else a
/// digest of the whole reference (`rancher/k3s:v1.34.4-k3s1` and
/// `...v1.33.8-k3s1` must not share one), and the number of agents.
pub fn reuse_name(image: &str, agents: usize) -> String {
    use sha2::{Digest, Sha256};
    let tag = image.rsplit(['-', ':']).next().unwrap_or(image);
    let key = if tag.len() == 12 && tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        tag.to_owned()
    } else {
        Sha256::digest(image.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
    };
    format!("cbam-reuse-{key}-{agents}")
}

#[derive(Debug)]
struct Node {
    id: NodeId,
    /// None for a node the run attached to.
    handle: Option<ContainerAsync<GenericImage>>,
}

/// A node as the cluster and Docker name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId {
    /// Kubernetes node name (the container's hostname).
    pub name: String,
    /// Docker container name.
    pub container: String,
}

/// The taint a node joining a running cluster carries until the app image
/// is served to it: no pod lands on a node that cannot pull it yet.
pub const JOINING_TAINT: &str = "cbam.io/joining";

pub struct KitCluster {
    pub name: String,
    /// The server first; workers join and leave during a run (an upgrade).
    nodes: std::sync::Mutex<Vec<Node>>,
    /// How it was started: a node joining later starts the same way.
    options: KitOptions,
    /// The node image's supervisor records component states (the kit's
    /// node; an upstream k3s image does not).
    pub supervised: bool,
    pub client: Client,
    /// The kubeconfig (super-admin, server rewritten to 127.0.0.1).
    pub kubeconfig_yaml: String,
    pub api_port: u16,
    pub http_port: u16,
    pub https_port: u16,
    /// Left running by `down` (attached to, or started to be kept).
    kept: bool,
}

impl std::fmt::Debug for KitCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KitCluster")
            .field("name", &self.name)
            .field("nodes", &self.nodes())
            .field("api_port", &self.api_port)
            .field("http_port", &self.http_port)
            .field("https_port", &self.https_port)
            .finish_non_exhaustive()
    }
}

/// What a node that stopped before it was ready said last: its FATAL line
/// (cbam-node names the component or the wait that failed).
fn node_said(error: &testcontainers::TestcontainersError) -> Option<String> {
    use testcontainers::core::error::WaitContainerError;
    use testcontainers::core::logs::WaitLogError;
    let testcontainers::TestcontainersError::WaitContainer(WaitContainerError::WaitLog(WaitLogError::EndOfStream(
        lines,
    ))) = error
    else {
        return None;
    };
    lines.iter().rev().find_map(|line| {
        let line = String::from_utf8_lossy(line);
        line.split_once("FATAL: ").map(|(_, said)| said.trim().to_owned())
    })
}

/// The node's kubeconfig, edited as data: every cluster's server is the API
/// port published on this host's loopback.
pub fn published(raw: &str, api_port: u16) -> Result<Kubeconfig, ClusterError> {
    let mut kubeconfig = Kubeconfig::from_yaml(raw).map_err(ClusterError::Kubeconfig)?;
    for named in &mut kubeconfig.clusters {
        if let Some(cluster) = named.cluster.as_mut() {
            cluster.server = Some(format!("https://127.0.0.1:{api_port}"));
        }
    }
    Ok(kubeconfig)
}

fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

impl KitCluster {
    /// Removes every container, volume and network labelled for `name`
    /// (what an interrupted run left behind).
    pub async fn sweep(name: &str) -> Result<(), DockerError> {
        let filter = format!("label={LABEL}={name}");
        let ids = docker::docker(&["ps", "-aq", "--filter", &filter]).await?;
        for id in ids.lines() {
            docker::docker(&["rm", "-f", "-v", id]).await?;
        }
        for kind in ["volume", "network"] {
            let ids = docker::docker(&[kind, "ls", "-q", "--filter", &filter]).await?;
            for id in ids.lines() {
                docker::docker(&[kind, "rm", id]).await?;
            }
        }
        Ok(())
    }

    /// Starts one node through k3s's interface and waits for its ready line
    /// (`env`: K3S_TOKEN, and K3S_URL for an agent).
    async fn start_node(
        opts: &KitOptions,
        node: &str,
        role: Role,
        server_container: &str,
        env: &[(&str, String)],
    ) -> Result<Node, ClusterError> {
        let (image, tag) = split_reference(&opts.image);
        let container = format!("{}-{node}", opts.name);
        let server = role == Role::Server;
        let mut image = GenericImage::new(image, tag).with_wait_for(WaitFor::message_on_either_std(role.ready_line()));
        if server {
            for port in PUBLISHED {
                image = image.with_exposed_port(port.tcp());
            }
        }
        let request = image
            .with_cmd(k3s::command(role, server_container, &opts.component_args)?)
            .with_host_config_modifier(move |host| node_host_config(host, server))
            .with_privileged(true)
            .with_network(&opts.name)
            .with_hostname(node)
            .with_container_name(&container)
            .with_label(LABEL, &opts.name)
            .with_mount(Mount::volume_mount(format!("{}-storage", opts.name), "/var/lib/cbam/storage"))
            .with_mount(Mount::tmpfs_mount("/run"))
            .with_mount(Mount::tmpfs_mount("/tmp"))
            .with_env_var("CBAM_COMPONENT_TIMEOUT", opts.timeouts.node_component.as_secs().to_string())
            .with_env_var("CBAM_JOIN_TIMEOUT", opts.timeouts.node_start.as_secs().to_string())
            .with_env_var("CBAM_CRASH_WINDOW", opts.timeouts.crash_window.as_secs().to_string());
        let request = env.iter().fold(request, |request, (name, value)| request.with_env_var(*name, value));
        let keep = if opts.keep || opts.reuse { ReuseDirective::Always } else { ReuseDirective::Never };
        let request = request.with_reuse(keep);
        let handle = request.with_startup_timeout(opts.timeouts.node_start).start().await.map_err(|source| {
            match node_said(&source) {
                Some(said) => ClusterError::NodeFailed { node: node.to_owned(), said },
                None => ClusterError::Start { node: node.to_owned(), source },
            }
        })?;
        Ok(Node { id: NodeId { name: node.to_owned(), container }, handle: Some(handle) })
    }

    /// The nodes now, the server first.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.lock().map(|nodes| nodes.iter().map(|n| n.id.clone()).collect()).unwrap_or_default()
    }

    fn server(&self) -> Result<NodeId, ClusterError> {
        self.nodes().into_iter().next().ok_or_else(|| ClusterError::Join("no server".into()))
    }

    /// Starts one more agent that joins this cluster's server with `token`,
    /// as `up` starts each (the server's full token joins; a token naming
    /// another CA must be refused, which the node's FATAL line says). A node
    /// that joins is one of the cluster's from then on (removed with it).
    pub async fn join_agent(&self, node: &str, token: &str) -> Result<NodeId, ClusterError> {
        let server = self.server()?.container;
        let env = [("K3S_TOKEN", token.to_owned()), ("K3S_URL", k3s::server_url(&server))];
        let joined = Self::start_node(&self.options, node, Role::Agent, &server, &env).await?;
        let id = joined.id.clone();
        self.nodes.lock().map_err(|_| ClusterError::Join("the node list is poisoned".into()))?.push(joined);
        Ok(id)
    }

    /// Adds a worker as a surge node of an upgrade does: it joins tainted
    /// [`JOINING_TAINT`], the app image archive is served to it, then the
    /// taint goes. Named after the highest agent number so far, plus one.
    pub async fn add_worker(&self, image: &ServedImage<'_>, node_image: Option<&str>) -> Result<NodeId, ClusterError> {
        let server = self.server()?.container;
        let next =
            self.nodes().iter().filter_map(|n| n.name.strip_prefix("agent")?.parse::<usize>().ok()).max().unwrap_or(0)
                + 1;
        let name = format!("agent{next}");
        let env = [("K3S_TOKEN", Self::join_token(&server).await?), ("K3S_URL", k3s::server_url(&server))];
        let mut opts = self.options.clone();
        if let Some(node_image) = node_image {
            opts.image = node_image.to_owned();
        }
        opts.component_args.push(("kubelet".into(), format!("--register-with-taints={JOINING_TAINT}=true:NoSchedule")));
        let node = Self::start_node(&opts, &name, Role::Agent, &server, &env).await?;
        let id = node.id.clone();
        self.nodes.lock().map_err(|_| ClusterError::Join("the node list is poisoned".into()))?.push(node);
        crate::node_exec::serve_image(&id.container, image.archives, image.registry, image.timeout.as_secs().max(1))
            .await?;
        untaint(&self.client, &id.name).await.map_err(|e| ClusterError::Untaint(id.name.clone(), e))?;
        Ok(id)
    }

    /// Removes worker `name` as a node pool does once it is drained: its
    /// container deleted, then its Node object. Never the server.
    pub async fn remove_worker(&self, name: &str) -> Result<(), ClusterError> {
        let node = {
            let mut nodes = self.nodes.lock().map_err(|_| ClusterError::Join("the node list is poisoned".into()))?;
            match nodes.iter().position(|n| n.id.name == name) {
                Some(0) | None => return Err(ClusterError::NotAWorker(name.to_owned())),
                Some(k) => nodes.remove(k),
            }
        };
        match node.handle {
            Some(handle) => {
                handle.rm().await.map_err(|source| ClusterError::Remove { node: name.to_owned(), source })?;
            }
            None => drop(docker::docker(&["rm", "-f", "-v", &node.id.container]).await?),
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(self.client.clone());
        match api.delete(name, &kube::api::DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::DeleteNode(name.to_owned(), e)),
        }
    }

    /// The server's full join token (a secret: never shown).
    async fn join_token(server: &str) -> Result<String, ClusterError> {
        let token = docker::docker(&["exec", server, "cat", k3s::TOKEN]).await?;
        if k3s::is_full_token(&token) { Ok(token) } else { Err(ClusterError::Token) }
    }

    /// The running cluster `opts.name` with all its nodes, if there is one.
    async fn attach(opts: &KitOptions) -> Result<Option<KitCluster>, ClusterError> {
        let filter = format!("label={LABEL}={}", opts.name);
        let running =
            docker::docker(&["ps", "--filter", &filter, "--filter", "status=running", "--format", "{{.Names}}"])
                .await?;
        // The nodes as they run now: an upgrade replaces agents with new ones.
        let prefix = format!("{}-", opts.name);
        let mut agents: Vec<&str> =
            running.lines().filter_map(|c| c.strip_prefix(&prefix)).filter(|n| *n != "server").collect();
        agents.sort_unstable();
        if running.lines().count() != opts.agents + 1 || agents.len() != opts.agents {
            return Ok(None);
        }
        let server = format!("{}-server", opts.name);
        let port = |p: u16| {
            let server = server.clone();
            async move {
                let out = docker::docker(&["port", &server, &format!("{p}/tcp")]).await?;
                Ok::<u16, ClusterError>(
                    out.lines().find_map(|l| l.rsplit(':').next()?.trim().parse().ok()).unwrap_or_default(),
                )
            }
        };
        let (api_port, http_port, https_port) = (port(k3s::API_PORT).await?, port(80).await?, port(443).await?);
        let id = |name: &str| Node {
            id: NodeId { container: format!("{prefix}{name}"), name: name.to_owned() },
            handle: None,
        };
        let mut nodes = vec![id("server")];
        nodes.extend(agents.into_iter().map(id));
        Ok(Some(Self::connected(opts, nodes, (api_port, http_port, https_port), true).await?))
    }

    /// The cluster once its nodes run (the server first): a client through
    /// the published API port.
    async fn connected(
        opts: &KitOptions,
        nodes: Vec<Node>,
        (api_port, http_port, https_port): (u16, u16, u16),
        kept: bool,
    ) -> Result<KitCluster, ClusterError> {
        let (kubeconfig_yaml, client) = Self::connect(&nodes[0].id.container, api_port).await?;
        let supervised = docker::image_label(&opts.image, SUPERVISOR_LABEL).await?.is_some();
        Ok(KitCluster {
            name: opts.name.clone(),
            nodes: std::sync::Mutex::new(nodes),
            options: opts.clone(),
            supervised,
            client,
            kubeconfig_yaml,
            api_port,
            http_port,
            https_port,
            kept,
        })
    }

    /// Other reusable clusters (another kit or agent count) are stale: removed.
    async fn sweep_stale_reuse(keep: &str) -> Result<(), DockerError> {
        let names = docker::docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL}"),
            "--format",
            &format!("{{{{.Label \"{LABEL}\"}}}}"),
        ])
        .await?;
        let mut stale: Vec<&str> = names.lines().filter(|n| n.starts_with("cbam-reuse-") && *n != keep).collect();
        stale.sort_unstable();
        stale.dedup();
        for name in stale {
            Self::sweep(name).await?;
        }
        Ok(())
    }

    /// The kubeconfig (server rewritten to the published API port) and a client.
    async fn connect(server: &str, api_port: u16) -> Result<(String, Client), ClusterError> {
        let raw = docker::docker(&["exec", server, "cat", k3s::KUBECONFIG]).await?;
        let kubeconfig = published(&raw, api_port)?;
        let kubeconfig_yaml = serde_norway::to_string(&kubeconfig).map_err(ClusterError::KubeconfigText)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(ClusterError::Kubeconfig)?;
        let client = crate::api_client::client(config).map_err(ClusterError::Client)?;
        Ok((kubeconfig_yaml, client))
    }

    pub async fn up(opts: &KitOptions) -> Result<KitCluster, ClusterError> {
        if opts.reuse {
            Self::sweep_stale_reuse(&opts.name).await?;
            if let Some(cluster) = Self::attach(opts).await? {
                return Ok(cluster);
            }
        }
        Self::sweep(&opts.name).await?;
        let created = Self::create(opts).await;
        if created.is_err() {
            // A cluster that did not come up is not left behind. The nodes'
            // handles were dropped (testcontainers removes them meanwhile):
            // a second sweep takes what the first found in removal.
            if Self::sweep(&opts.name).await.is_err() {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                Self::sweep(&opts.name).await?;
            }
        }
        created
    }

    async fn create(opts: &KitOptions) -> Result<KitCluster, ClusterError> {
        let label = format!("{LABEL}={}", opts.name);
        docker::docker(&["network", "create", "--label", &label, &opts.name]).await?;
        docker::docker(&["volume", "create", "--label", &label, &format!("{}-storage", opts.name)]).await?;
        let server_container = format!("{}-server", opts.name);
        let password = [("K3S_TOKEN", k3s::new_password()?)];
        let mut nodes = vec![Self::start_node(opts, "server", Role::Server, &server_container, &password).await?];
        // Agents join with the server's full token (it names the server's
        // CA, which each checks first), all at once.
        let join = [
            ("K3S_TOKEN", Self::join_token(&server_container).await?),
            ("K3S_URL", k3s::server_url(&server_container)),
        ];
        let mut agents = tokio::task::JoinSet::new();
        for i in 1..=opts.agents {
            let (opts, server, join) = (opts.clone(), server_container.clone(), join.clone());
            agents
                .spawn(async move { Self::start_node(&opts, &format!("agent{i}"), Role::Agent, &server, &join).await });
        }
        let mut joined = Vec::new();
        while let Some(result) = agents.join_next().await {
            joined.push(result.map_err(|e| ClusterError::Join(e.to_string()))??);
        }
        joined.sort_by(|a, b| a.id.name.cmp(&b.id.name));
        nodes.extend(joined);
        let server = &nodes[0];
        let port = |p: u16| async move {
            let handle = server.handle.as_ref().ok_or_else(|| ClusterError::Join("no server handle".into()))?;
            handle.get_host_port_ipv4(p.tcp()).await.map_err(|source| ClusterError::Port {
                node: server.id.name.clone(),
                port: p,
                source,
            })
        };
        let ports = (port(k3s::API_PORT).await?, port(80).await?, port(443).await?);
        let cluster = Self::connected(opts, nodes, ports, opts.keep || opts.reuse).await?;
        // The platform layer, once the API answers; the gate waits for it.
        addons::install(&cluster.client, addons::Provisioner::Harness).await?;
        Ok(cluster)
    }

    /// Serves image archives to every node's containerd from a registry
    /// on the node's loopback (`registry`: the `oci-registry` binary), each
    /// answering within `timeout`: pods pull them as they would in production.
    pub async fn serve_image(&self, archives: &[&Path], registry: &Path, timeout: Duration) -> Result<(), DockerError> {
        for node in self.nodes() {
            crate::node_exec::serve_image(&node.container, archives, registry, timeout.as_secs().max(1)).await?;
        }
        Ok(())
    }

    /// Whether `down` keeps the cluster for the next run.
    pub fn kept(&self) -> bool {
        self.kept
    }

    /// Removes the nodes in reverse creation order, then the volumes and the
    /// network; a cluster kept for reuse stays up.
    pub async fn down(self) -> Result<(), ClusterError> {
        if self.kept() {
            return Ok(());
        }
        let mut nodes = self.nodes.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(node) = nodes.pop() {
            let name = node.id.name.clone();
            if let Some(handle) = node.handle {
                handle.rm().await.map_err(|source| ClusterError::Remove { node: name, source })?;
            }
        }
        Self::sweep(&self.name).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reusable_cluster_is_named_by_its_configuration() {
        assert_eq!(reuse_name("cbam-kit/node:v1.34.4-fb285fccc70e", 2), "cbam-reuse-fb285fccc70e-2");
        assert_ne!(
            reuse_name("cbam-kit/node:v1.34.4-fb285fccc70e", 3),
            reuse_name("cbam-kit/node:v1.34.4-0123456789ab", 3)
        );
        assert_eq!(split_reference("cbam-kit/node:v1.34.4-x"), ("cbam-kit/node", "v1.34.4-x"));
        let (a, b) = (reuse_name("rancher/k3s:v1.34.4-k3s1", 2), reuse_name("rancher/k3s:v1.33.8-k3s1", 2));
        assert_ne!(a, b, "another upstream image, another cluster");
        assert!(a.starts_with("cbam-reuse-") && a.len() == "cbam-reuse-".len() + 12 + 2, "{a}");
    }

    #[test]
    fn the_kit_labels_its_node_image_as_supervised() {
        let build = include_str!("../../../ci/kit/build.sh");
        assert!(
            build.contains(&format!("SUPERVISOR_LABEL={SUPERVISOR_LABEL}\n")),
            "ci/kit/build.sh names another label"
        );
    }

    #[test]
    fn the_kubeconfig_points_at_the_published_port_and_keeps_the_rest() {
        let raw = "apiVersion: v1\nkind: Config\nclusters:\n- name: kit\n  cluster:\n    server: https://server:6443\n    \
                   certificate-authority-data: Q0E=\ncontexts:\n- name: kit\n  context:\n    cluster: kit\n    user: admin\n\
                   current-context: kit\nusers:\n- name: admin\n  user:\n    token: t0k3n\n";
        let kubeconfig = published(raw, 41234).expect("kubeconfig");
        let cluster = kubeconfig.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:41234"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        let text = serde_norway::to_string(&kubeconfig).expect("yaml");
        let again = Kubeconfig::from_yaml(&text).expect("reparsed");
        assert_eq!(again.current_context.as_deref(), Some("kit"));
        assert!(text.contains("t0k3n"), "credentials survive the round trip: {text}");
    }
}
