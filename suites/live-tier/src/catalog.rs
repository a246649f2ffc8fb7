//! What a row of the live check table (`LIVE_CHECKS` in `live.rs`) says:
//! its scope, its role for the others, its place in the run order, and the
//! function that runs it.

use std::future::Future;
use std::pin::Pin;

use crate::live::context::LiveContext;
use crate::outcome::Recorder;

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

use crate::live::LIVE_CHECKS;

/// The check with this id.
pub fn find(id: &str) -> Option<&'static LiveCheck> {
    LIVE_CHECKS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{Order, Role, find};
    use crate::live::LIVE_CHECKS;

    #[test]
    fn ids_are_unique_and_live() {
        let ids: BTreeSet<&str> = LIVE_CHECKS.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), LIVE_CHECKS.len(), "a live check id appears twice");
        assert!(LIVE_CHECKS.iter().all(|c| c.id.starts_with("live-")), "the report tells the tiers apart by prefix");
    }

    #[test]
    fn the_table_keeps_its_ordering_rules() {
        let last = LIVE_CHECKS.len() - 1;
        for (k, check) in LIVE_CHECKS.iter().enumerate() {
            match check.order {
                Order::First => assert_eq!(k, 0, "{} must be first", check.id),
                Order::Last => assert_eq!(k, last, "{} must be last", check.id),
                Order::Free => assert!(k > 0, "{} is not the first", check.id),
                Order::After(before) => {
                    for id in before {
                        let position = LIVE_CHECKS.iter().position(|c| c.id == *id);
                        assert!(position.is_some_and(|p| p < k), "{} must run after {id}", check.id);
                    }
                }
            }
        }
    }

    #[test]
    fn exactly_one_rollout_and_it_runs_first() {
        let rollouts: Vec<&str> = LIVE_CHECKS.iter().filter(|c| c.role == Role::Rollout).map(|c| c.id).collect();
        assert_eq!(rollouts, [LIVE_CHECKS[0].id]);
        assert!(find("live-rollout").is_some() && find("live-nothing").is_none());
    }
}
