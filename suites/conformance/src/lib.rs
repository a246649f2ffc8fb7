//! Conformance harness for the CBAM Importer Copilot's Kubernetes deployment:
//! every documented outcome of `infra/` becomes a check that can fail.
//!
//! This crate is the front door only: the command line (`cli`), the
//! cluster subcommand (`cluster_command`) and the mutations of a copy of
//! `infra/` the tests apply (`mutation`). The work is in the layers below
//! (docs/design.md): `cbam-static-tier` and `cbam-live-tier` over
//! `cbam-model`, `cbam-report` over `cbam-model`.

pub mod cli;
pub mod cluster_command;
pub mod exit_code;
pub mod mutation;
pub mod provider;
