//! The bottom layer of the conformance harness: what every tier and the
//! report share, as data. Environments and their fixtures (the expected
//! outcomes), typed manifests, quantities, outcomes and where their values
//! come from, the evidence of a run and how an evidence file is written.
//! Depends on no other crate of the workspace.

pub mod environment;
pub mod evidence_file;
pub mod fixtures;
pub mod manifest;
pub mod outcome;
pub mod profile;
pub mod quantity;
pub mod redact;
pub mod run;
pub mod source;
mod unknown_fields;
