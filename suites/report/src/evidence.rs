//! What the report is written from: the outcomes of both tiers, the tiers
//! that did not run, and the catalog of checks. Data only.

use cbam_model::outcome::Outcome;
use cbam_model::run::{LiveRun, Rule, StaticRun};

/// A tier that did not run, and why (never counted as passed).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub tier: &'static str,
    pub reason: String,
}

/// Everything one run established.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub run: &'a StaticRun,
    pub live: Option<&'a LiveRun>,
    pub skipped: &'a [Skipped],
    /// Every check the harness has, static then live, in a stable order
    /// (SARIF's rules): the binary passes both tiers' tables.
    pub rules: &'a [Rule],
}

impl<'a> Evidence<'a> {
    pub fn outcomes(&self) -> impl Iterator<Item = &'a Outcome> {
        self.run.outcomes().chain(self.live.into_iter().flat_map(|l| l.outcomes.iter()))
    }
}
