//! Which cluster provider the command line chose (`--cluster`), for a
//! check run and for `conformance cluster`.

use clap::ValueEnum;

/// Where the live tier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cluster {
    /// k3s in containers (testcontainers), created and removed by the harness.
    K3s,
    /// The real kind CLI with a node image.
    Kind,
    /// A kubeconfig/context you provide; left as found.
    Existing,
}
