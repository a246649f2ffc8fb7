//! Every wait of the cluster tier has its bound here, with the reason for it.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A node container logs "ready": PKI, etcd and the API server, then
    /// containerd, airgap image import and kubelet (measured 10-15 s warm).
    pub node_start: Duration,
    /// Every node Ready (kubelet registered, CNI config written).
    pub nodes_ready: Duration,
    /// Addons (CoreDNS, metrics-server, Traefik, storage) Available; the
    /// metrics API needs one scrape after metrics-server starts (15 s).
    pub addons_ready: Duration,
    /// A test workload rolled out.
    pub rollout: Duration,
    /// One HTTP request to a published port.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        // A rollout that cannot succeed (a broken probe path) is waited for
        // this long; mutation tests shorten it with CBAM_TIMEOUT_ROLLOUT_SECONDS.
        let rollout = std::env::var("CBAM_TIMEOUT_ROLLOUT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
        Timeouts {
            node_start: Duration::from_secs(180),
            nodes_ready: Duration::from_secs(120),
            addons_ready: Duration::from_secs(180),
            rollout: Duration::from_secs(rollout),
            request: Duration::from_secs(5),
        }
    }
}
