//! What the harness does to the cluster for a check: drain a node, replace
//! a worker, run a tool container beside the app, wait for the deployment at
//! rest, put stacked pods back where the anti-affinity places them.

pub(crate) mod hpa_rest;
pub(crate) mod node_drain;
pub(crate) mod node_pool;
pub(crate) mod respread;
pub(crate) mod tool_container;
