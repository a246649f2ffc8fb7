//! Why a live run could not go on (distinct from a check failing: that is an
//! outcome). Every variant says what the run failed to do.

use std::path::PathBuf;

use cbam_cluster::docker::DockerError;
use cbam_cluster::existing::ExistingError;
use cbam_cluster::kind::KindError;
use cbam_cluster::kit::KitError;
use cbam_cluster::provider::ClusterError;
use cbam_cluster::readiness::GateError;

use crate::apply::ApplyError;
use crate::journal::JournalError;
use crate::run::run_ca::RunCaError;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("reach a Docker engine (run `just engine`, ci/engine.sh)")]
    NoEngine,
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error("find the kit's node image {0} in Docker (run `just kit`)")]
    NodeImageMissing(String),
    #[error("find the node image {0} (--upgrade-to) in Docker: the workers of the upgrade are started from it")]
    UpgradeImageMissing(String),
    #[error("read {0}, the application image or the registry serving it (run `just image`, or pass --app-image)")]
    AppImageMissing(PathBuf),
    #[error("find the harness's tool image")]
    ToolImage(#[source] cbam_cluster::tool_image::ToolImageError),
    #[error("bring the cluster up")]
    Cluster(#[source] Box<ClusterError>),
    #[error("bring the kind cluster up")]
    Kind(#[source] Box<KindError>),
    #[error("pass the readiness gate")]
    Gate(#[source] GateError),
    #[error("serve the application image to the nodes")]
    Image(#[source] DockerError),
    #[error(transparent)]
    Tls(#[from] RunCaError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("read the cluster: {0}")]
    Read(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("undo what an earlier, interrupted run changed on this cluster: {0} (fix that, then `--cleanup-only`)")]
    Leftovers(String),
    #[error(transparent)]
    Existing(#[from] ExistingError),
    #[error(
        "use namespace {0} on the existing cluster: it already exists (the harness only runs in namespaces it creates, and removes them; use a dedicated cluster or delete it)"
    )]
    NamespaceExists(String),
    #[error("finish: interrupted (Ctrl-C or SIGTERM); {0}")]
    Interrupted(String),
}

impl From<KindError> for LiveError {
    fn from(e: KindError) -> Self {
        LiveError::Kind(Box::new(e))
    }
}

impl From<ClusterError> for LiveError {
    fn from(e: ClusterError) -> Self {
        LiveError::Cluster(Box::new(e))
    }
}
