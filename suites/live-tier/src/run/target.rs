//! What a live run is asked to do (`LiveOptions`: images, profile, where to
//! run) and the cluster it then talks to (`Target`), whoever made it.

use std::path::PathBuf;

use cbam_cluster::cluster::Cluster;
use cbam_cluster::existing::{ExistingCluster, ExistingOptions};
use cbam_cluster::timeouts::Timeouts;
use cbam_cluster::tool_image::{self, ToolImageError};
use cbam_model::run::Baseline;
use kube::Client;

use crate::journal::Journal;
use cbam_model::profile::Profile;

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub app_image: PathBuf,
    /// The harness's tool image archive (`just image`: target/image/cbam-tool.tar),
    /// served beside the application's on clusters the harness creates.
    pub tool_archive: PathBuf,
    /// A previous release to roll out from and back to (`--baseline`).
    pub baseline: Option<Baseline>,
    /// None: choose the factor from the node's capacity (`--fit auto`).
    pub fit: Option<u32>,
    pub agents: usize,
    pub report_dir: PathBuf,
    pub profile: Profile,
    /// Where to run: a kit cluster the harness creates, or an existing one.
    pub provider: Provider,
    /// The tool image as the cluster pulls it (`--tool-image`, a mirror of
    /// the tool archive); None: the archive's own, by digest.
    pub tool_image: Option<String>,
    /// Checks not run (`--skip-check`), each reported as not verified.
    pub skip_checks: Vec<String>,
    /// Every wait's bound (fixtures/timeouts.yaml, `--timeout` applied).
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone)]
pub enum Provider {
    /// A kit cluster (1 server + `agents`), created and removed by the run,
    /// or with `reuse` kept warm and attached to by the next run; of
    /// `node_image` (k3s's interface), else the kit's; the workers
    /// `live-cluster-upgrade` joins are of `upgrade_to` when given (a newer
    /// or older k3s-compatible image), else of the cluster's own.
    Kit { reuse: bool, node_image: Option<String>, upgrade_to: Option<String> },
    /// A kind cluster (1 control plane + `agents` workers) by the real kind
    /// CLI on `node_image` (else the kind node image of the kit), created and
    /// removed by the run.
    Kind { node_image: Option<String> },
    /// A cluster from a kubeconfig; left as found.
    Existing(ExistingOptions),
}

/// The cluster a run talks to, whoever made it.
pub struct Target<'c> {
    pub client: Client,
    pub http_port: u16,
    pub https_port: u16,
    /// The provider: gate, image serving, ownership, nodes it may stop.
    pub(crate) cluster: &'c dyn Cluster,
    pub(crate) tool_image: String,
    /// Wait for each namespace to be gone (not when the cluster goes next).
    pub(crate) wait_cleanup: bool,
    /// The ingress controller's image when the run knows which one it
    /// reaches (the port-forwarded pod of an existing cluster).
    pub(crate) controller: Option<String>,
    /// Every change the run makes to the cluster, to undo.
    pub(crate) journal: &'c Journal,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("https_port", &self.https_port)
            .field("provider", &self.cluster.provider())
            .finish_non_exhaustive()
    }
}

impl<'c> Target<'c> {
    /// A cluster the harness made (kit or kind), which it serves the tool
    /// image TOOL_IMAGE.
    pub fn owned(cluster: &'c dyn Cluster, journal: &'c Journal, tool_image: &str) -> Self {
        Target {
            client: cluster.client().clone(),
            http_port: cluster.http_port(),
            https_port: cluster.https_port(),
            cluster,
            tool_image: tool_image.to_owned(),
            wait_cleanup: true,
            controller: None,
            journal,
        }
    }

    /// A cluster the harness did not make: its nodes have TOOL_IMAGE
    /// (loaded by the user, or pullable from the registry they named).
    pub(crate) fn existing(cluster: &'c ExistingCluster, journal: &'c Journal, tool_image: &str) -> Self {
        Target { controller: Some(cluster.ingress_image.clone()), ..Target::owned(cluster, journal, tool_image) }
    }
}

impl LiveOptions {
    /// The tool image the run's pods name: `--tool-image`, or the tool
    /// archive's own image by digest.
    pub fn tool_image(&self) -> Result<String, ToolImageError> {
        match &self.tool_image {
            Some(reference) => Ok(reference.clone()),
            None => tool_image::reference(&self.tool_archive),
        }
    }
}
