//! The live tier: each overlay applied to a real cluster and its documented
//! behaviour observed (probes, ingress TLS/CORS/headers/docs/rate limit,
//! governance enforcement, the PDB during a drain, autoscaling under load).

mod admission;
mod apply;
mod autoscaling;
mod context;
mod drain;
mod edge;
mod fit;
mod hpa_reading;
pub mod journal;
mod load;
mod metrics_pipeline;
mod rate_bucket;
mod restarts;
mod run;
mod run_ca;
mod scale_down;
mod scaling_timeline;
mod timeline_plot;
mod tls_versions;
mod unready;
mod workload;

pub use autoscaling::Profile;
pub use run::{LIVE_CHECKS, LiveError, LiveOptions, LiveRun, Provider, Target, cleanup_only, run, run_on};
