//! The report of a run, written from outcomes and evidence as data: the
//! report directory (summary.json, junit.xml, summary.md, results.sarif,
//! swapped in whole), SARIF for code scanning and CI annotations. Depends on
//! `cbam-model` only: it reads what the tiers found, never runs them.

pub mod annotations;
pub mod evidence;
pub mod report;
pub mod sarif;
