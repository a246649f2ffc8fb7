//! The static tier: each overlay rendered by the real kustomize, decoded
//! into typed objects, and every documented fact checked without a cluster
//! (inventory, workload, wiring, ingress, governance, invariants across
//! objects, the summary's own tables). The result is `cbam_model::run`'s
//! data, which the live tier applies and the report reads.
//!
//! Modules, each importing only those listed before it: `render` (the
//! kustomize process), `source_map` (where each value comes from),
//! `context` (what a check sees), `checks` (the table, one module per
//! family), `tier` (the run over every environment). Depends on
//! `cbam-model` only.

pub mod checks;
pub mod context;
pub mod render;
pub mod source_map;
pub mod tier;
