//! What a row of the live check table (`LIVE_CHECKS` in `checks/mod.rs`) says:
//! its scope, its role for the others, its place in the run order, and the
//! function that runs it.

use std::future::Future;
use std::pin::Pin;

use crate::context::LiveContext;
use cbam_model::outcome::Recorder;

/// Which environments a check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every environment.
    Every,
    /// Environments whose fixture carries governance (HPA, PDB, quota, limit range).
    Governed,
}

/// What a check is to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The rollout: when it fails, every `NeedsRollout` check is not verified.
    Rollout,
    /// Runs after a failed rollout too (what exists is still worth seeing).
    Independent,
    /// Needs a rolled-out Deployment (pods to talk to).
    NeedsRollout,
}

/// Where a check may run; the table's order is the run order, and a test
/// holds the table to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// First: everything else needs what it establishes.
    First,
    /// Anywhere after the first.
    Free,
    /// After each of these checks (they must come earlier in the table).
    After(&'static [&'static str]),
    /// Last: it judges the whole run.
    Last,
}

/// A check's run: it records its facts into the recorder.
pub(crate) type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;
pub(crate) type CheckRun = for<'a, 'b> fn(&'a LiveContext<'b>, &'a mut Recorder) -> CheckFuture<'a>;

#[derive(Debug, Clone, Copy)]
pub struct LiveCheck {
    pub id: &'static str,
    /// What it proves (the README's table).
    pub about: &'static str,
    pub scope: Scope,
    pub role: Role,
    pub order: Order,
    /// Runs only with `--profile nightly` (in the quick profile it is not
    /// asked for, like a governed check in an ungoverned environment).
    pub nightly_only: bool,
    pub(crate) run: CheckRun,
}
