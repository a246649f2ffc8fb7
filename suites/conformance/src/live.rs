//! The live tier: each overlay applied to a real cluster and its documented
//! behaviour observed (probes, ingress TLS/CORS/headers/docs/rate limit,
//! governance enforcement, the PDB during a drain).

mod admission;
mod apply;
mod context;
mod drain;
mod edge;
mod fit;
mod run;
mod run_ca;
mod workload;

pub use run::{LIVE_CHECKS, LiveError, LiveOptions, LiveRun, run, run_on};
