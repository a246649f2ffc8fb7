//! The three environments the deployment documents.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    Dev,
    Staging,
    Production,
}

impl Env {
    pub const ALL: [Env; 3] = [Env::Dev, Env::Staging, Env::Production];

    pub fn as_str(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Staging => "staging",
            Env::Production => "production",
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown environment {0:?} (expected dev, staging, production or all)")]
pub struct UnknownEnv(String);

impl FromStr for Env {
    type Err = UnknownEnv;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Env::ALL.into_iter().find(|env| env.as_str() == s).ok_or_else(|| UnknownEnv(s.to_owned()))
    }
}
