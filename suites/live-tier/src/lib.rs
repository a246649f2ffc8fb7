//! The live tier: each overlay applied to a real cluster and its documented
//! behaviour observed (probes, ingress TLS/CORS/headers/docs/rate limit,
//! runtime security, governance enforcement, the PDB during a drain,
//! rollouts and drains under load, autoscaling).
//!
//! Its modules by role, each importing only those listed before it:
//! - `judges`: pure judgements of observed data (scaling timeline,
//!   scale-down, HPA reading, rate bucket, disruption budgets, restarts);
//! - `plots`: SVG evidence of what the judges read;
//! - `journal`, `context`, `catalog`, `apply`, `app_pods`: what a
//!   check sees and the run's record of its changes;
//! - `traffic`: load and samplers (HTTPS client, pipeline-run load, the
//!   in-cluster prober, Ready sampler, a session of load during a disruption);
//! - `actions`: what the harness does to the cluster for a check (drain a
//!   node, run a tool container, wait for the HPA at rest, re-spread
//!   stacked pods);
//! - `checks`: the table of live checks and one module per check;
//! - `run`: the cluster's lifecycle and every environment's phases.
//!
//! Depends on `cbam-model`, `cbam-cluster`, `cbam-prober` (the load
//! generator and its records) and `cbam-error-chain`; never on the static
//! tier, the report or the CLI.

pub mod actions;
pub mod app_pods;
pub mod apply;
pub mod catalog;
pub mod checks;
pub mod context;
pub mod journal;
pub mod judges;
pub mod plots;
pub mod run;
pub mod traffic;
