//! Conformance harness for the CBAM Importer Copilot's Kubernetes deployment:
//! every documented outcome of `infra/` becomes a check that can fail.

pub mod annotations;
pub mod checks;
pub mod cli;
pub mod cluster_command;
mod context;
pub mod environment;
pub mod fixtures;
pub mod live;
pub mod manifest;
pub mod mutation;
pub mod outcome;
mod quantity;
pub mod redact;
pub mod render;
pub mod report;
pub mod sarif;
pub mod source_map;
pub mod static_tier;
mod unknown_fields;
