//! What a live check sees: the environment's fixtures, the cluster, and the
//! ingress as published on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;

use cbam_cluster::timeouts::Timeouts;
use kube::Client;

use crate::journal::Journal;
use crate::judges::rate_bucket::IngressLog;
use crate::judges::restart_log::RestartLog;
use cbam_model::environment::Env;
use cbam_model::fixtures::{Autoscaling, Environment, Governance, Workload};
use cbam_model::profile::Profile;

#[derive(Clone)]
pub(crate) struct LiveContext<'a> {
    pub(crate) env: Env,
    pub(crate) fixture: &'a Environment,
    pub(crate) workload: &'a Workload,
    pub(crate) governance: &'a Governance,
    pub(crate) autoscaling: &'a Autoscaling,
    pub(crate) client: Client,
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    /// PEM of the run's CA, the only root the HTTPS checks trust.
    pub(crate) ca_pem: String,
    pub(crate) timeouts: Timeouts,
    /// The ingress controller's image (what serves the annotations).
    pub(crate) controller: String,
    /// The harness's tool image (cbam-prober: load, idle, inspect, signal),
    /// by digest or as `--tool-image` names it.
    pub(crate) tool_image: String,
    /// The resource scale factor applied to this environment.
    pub(crate) factor: u32,
    /// Where a check registers a change to the cluster before making it.
    pub(crate) journal: &'a Journal,
    /// Every request the run sends through the ingress (the rate limit's bucket).
    pub(crate) ingress_log: IngressLog,
    /// Restart counts of the app's containers, sampled after every check.
    pub(crate) restarts: RestartLog,
    /// Which autoscaling scenarios run (`--profile`).
    pub(crate) profile: Profile,
    /// The run's evidence directory (autoscaling plots and samples).
    pub(crate) report_dir: &'a Path,
    /// fixtures/disruption.yaml
    pub(crate) disruption: &'a cbam_model::fixtures::Disruption,
    /// The nodes the harness may stop and start, as (node name, container);
    /// Err: why not (an existing cluster's are not the harness's; kind's not yet).
    pub(crate) nodes: Result<Vec<(String, String)>, cbam_cluster::cluster::NotStoppable>,
    /// The cluster's provider: the workers it may replace (an upgrade).
    pub(crate) cluster: &'a dyn cbam_cluster::cluster::Cluster,
    /// The application image archive (`--app-image`), served to a node
    /// that joins during the run.
    pub(crate) app_image: &'a Path,
    /// The tool image archive (`--tool-archive`), served beside it.
    pub(crate) tool_archive: &'a Path,
    /// The node image of the workers an upgrade joins (`--upgrade-to`);
    /// None: the cluster's own.
    pub(crate) upgrade_to: Option<&'a str>,
    /// The baseline release's overlay for this environment, fitted like the
    /// candidate's (`--baseline`).
    pub(crate) baseline: Option<Vec<cbam_model::manifest::Object>>,
    /// The candidate's overlay as applied (fitted), to roll forward to.
    pub(crate) candidate: &'a [cbam_model::manifest::Object],
}

impl std::fmt::Debug for LiveContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveContext").field("env", &self.env).field("https", &self.https).finish_non_exhaustive()
    }
}

impl LiveContext<'_> {
    pub(crate) fn namespace(&self) -> &str {
        &self.fixture.namespace
    }

    pub(crate) fn deployment_label(&self) -> String {
        format!("Deployment {}/{}", self.fixture.namespace, self.workload.deployment)
    }

    /// The number of Ready replicas documented at rest.
    pub(crate) fn replicas_at_rest(&self) -> i32 {
        match self.fixture.replicas {
            cbam_model::fixtures::Replicas::Fixed(n) => n,
            cbam_model::fixtures::Replicas::Hpa { min, .. } => min,
        }
    }
}
