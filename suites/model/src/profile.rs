//! How deep a run goes: one name for the command line (`--profile`), the
//! fixtures (which autoscaling scenarios run in which profile) and the live
//! tier (which checks run).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Scale-up of the quick scenarios only: what `.ci/run` and pull
    /// requests run.
    Quick,
    /// Every scenario, up and down, and the nightly-only checks (node loss):
    /// the nightly job.
    Nightly,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Quick, Profile::Nightly];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Nightly => "nightly",
        }
    }

    /// What the profile runs, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Profile::Quick => "scale-up only: what `.ci/run` and pull requests run",
            Profile::Nightly => "up and down, every metric, the nightly-only checks: the nightly job",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("use profile {0:?}: not quick or nightly")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_an_unknown_one_is_refused() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>().expect("known"), p);
        }
        assert!("Nightly".parse::<Profile>().is_err());
    }
}
