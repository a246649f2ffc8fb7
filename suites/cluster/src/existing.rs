//! `--cluster existing`: any kubeconfig and context (a release gate against
//! a real staging cluster). The harness creates nothing cluster-wide here;
//! the ingress controller is reached through a port-forward to one of its
//! pods, served on 127.0.0.1, so every request still goes to a local port.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ExistingError {
    #[error("read the kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("build a client for context {context}")]
    Client {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error("find the ingress controller: {0}")]
    Ingress(String),
    #[error("listen on 127.0.0.1 for the ingress port-forward")]
    Listen(#[source] std::io::Error),
}

/// Where the ingress controller's Service is; the first one present wins.
pub const INGRESS_SERVICES: &[(&str, &str)] =
    &[("ingress-nginx", "ingress-nginx-controller"), ("traefik", "traefik"), ("kube-system", "traefik")];

#[derive(Debug, Clone, Default)]
pub struct ExistingOptions {
    /// None: $KUBECONFIG or ~/.kube/config.
    pub kubeconfig: Option<PathBuf>,
    /// None: the kubeconfig's current context.
    pub context: Option<String>,
    /// `namespace/name` of the ingress controller's Service; None: detected.
    pub ingress_service: Option<String>,
}

pub struct ExistingCluster {
    pub client: Client,
    pub context: String,
    /// The API server's URL (what the cleanup journal is keyed by).
    pub server: String,
    /// Local ports forwarding to the ingress controller's HTTP and HTTPS.
    pub http_port: u16,
    pub https_port: u16,
    /// `namespace/name` of the ingress Service forwarded to.
    pub ingress: String,
    /// The image of the ingress controller pod the forwards reach.
    pub ingress_image: String,
    forwards: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ExistingCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExistingCluster")
            .field("context", &self.context)
            .field("ingress", &self.ingress)
            .finish_non_exhaustive()
    }
}

/// A client for the kubeconfig's context: (client, context, API server URL).
pub async fn client(opts: &ExistingOptions) -> Result<(Client, String, String), ExistingError> {
    let kubeconfig = match &opts.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|source| ExistingError::Kubeconfig { path: path.display().to_string(), source })?,
        None => Kubeconfig::read()
            .map_err(|source| ExistingError::Kubeconfig { path: "$KUBECONFIG or ~/.kube/config".into(), source })?,
    };
    let context = opts.context.clone().or_else(|| kubeconfig.current_context.clone()).unwrap_or_default();
    let options = KubeConfigOptions { context: Some(context.clone()), ..KubeConfigOptions::default() };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| ExistingError::Kubeconfig { path: format!("context {context}"), source })?;
    let server = config.cluster_url.to_string();
    let client = crate::api_client::client(config)
        .map_err(|source| ExistingError::Client { context: context.clone(), source })?;
    Ok((client, context, server))
}

/// The ingress controller found behind its Service: the pod the
/// port-forwards reach, its image, and the pod ports serving 80 and 443.
struct Backend {
    namespace: String,
    service: String,
    pod: String,
    image: String,
    http: u16,
    https: u16,
}

/// The Service and a Ready pod behind it, with the pod ports serving 80 and 443.
async fn ingress_backend(client: &Client, wanted: Option<&str>) -> Result<Backend, ExistingError> {
    let candidates: Vec<(String, String)> = match wanted {
        Some(s) => {
            let (ns, name) =
                s.split_once('/').ok_or_else(|| ExistingError::Ingress(format!("{s:?} is not namespace/name")))?;
            vec![(ns.to_owned(), name.to_owned())]
        }
        None => INGRESS_SERVICES.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect(),
    };
    for (ns, name) in &candidates {
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        let Ok(Some(svc)) = services.get_opt(name).await else { continue };
        let spec = svc.spec.unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        let labels = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let list = pods
            .list(&ListParams::default().labels(&labels))
            .await
            .map_err(|e| ExistingError::Ingress(e.to_string()))?;
        let ready = list.items.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        let Some(pod) = ready else { return Err(ExistingError::Ingress(format!("{ns}/{name} has no Ready pod"))) };
        // Resolve each Service port (80, 443) to the pod's container port.
        let container_ports: Vec<(Option<String>, i32)> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| (p.name.clone(), p.container_port))
            .collect();
        let resolve = |port: i32| -> Option<u16> {
            let sp = spec.ports.iter().flatten().find(|p| p.port == port)?;
            let target = match &sp.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n,
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                    container_ports.iter().find(|(n, _)| n.as_deref() == Some(s.as_str()))?.1
                }
                None => port,
            };
            u16::try_from(target).ok()
        };
        let (Some(http), Some(https)) = (resolve(80), resolve(443)) else {
            return Err(ExistingError::Ingress(format!("{ns}/{name} does not serve ports 80 and 443")));
        };
        let image = pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
        return Ok(Backend {
            namespace: ns.clone(),
            service: name.clone(),
            pod: pod.metadata.name.unwrap_or_default(),
            image: image.unwrap_or_else(|| "unknown".into()),
            http,
            https,
        });
    }
    Err(ExistingError::Ingress(format!(
        "none of {} exists (pass --ingress-service NAMESPACE/NAME)",
        candidates.iter().map(|(n, s)| format!("{n}/{s}")).collect::<Vec<_>>().join(", ")
    )))
}

/// Serves 127.0.0.1:<ephemeral> and forwards each connection to `port` of
/// the pod through the API server.
async fn forward(pods: Api<Pod>, pod: String, port: u16) -> Result<(u16, JoinHandle<()>), ExistingError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(ExistingError::Listen)?;
    let local = listener.local_addr().map_err(ExistingError::Listen)?.port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (pods, pod) = (pods.clone(), pod.clone());
            tokio::spawn(async move {
                let Ok(mut forwarder) = pods.portforward(&pod, &[port]).await else { return };
                if let Some(mut upstream) = forwarder.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                }
                drop(forwarder);
            });
        }
    });
    Ok((local, task))
}

impl ExistingCluster {
    pub async fn connect(opts: &ExistingOptions) -> Result<Self, ExistingError> {
        let (client, context, server) = client(opts).await?;
        let b = ingress_backend(&client, opts.ingress_service.as_deref()).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &b.namespace);
        let (http_port, http_task) = forward(pods.clone(), b.pod.clone(), b.http).await?;
        let (https_port, https_task) = forward(pods, b.pod, b.https).await?;
        Ok(ExistingCluster {
            client,
            context,
            server,
            http_port,
            https_port,
            ingress: format!("{}/{}", b.namespace, b.service),
            ingress_image: b.image,
            forwards: vec![http_task, https_task],
        })
    }

    /// Stops the port-forwards; the cluster itself is left as found.
    pub fn close(self) {
        for task in self.forwards {
            task.abort();
        }
    }
}
