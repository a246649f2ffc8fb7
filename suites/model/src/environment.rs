//! The environments: one per `fixtures/environments/NAME.yaml`. Nothing in
//! the code names them; adding one (`qa`) is an overlay, a fixture and a
//! column in the summary's tables.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An environment's name, validated: lowercase letters, digits and `-`,
/// starting with a letter (it names a file, an overlay and a report
/// directory); `all` means every one. Copy, compared by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Env(&'static str);

/// Every name made into an `Env` in this process, each kept once.
static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "use {0:?} as an environment name: lowercase letters, digits and '-', starting with a letter (`all` means every environment)"
    )]
    BadName(String),
    #[error("list the environments in {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("find environment {name:?}: no {dir}/{name}.yaml (there are: {known})")]
    Unknown { name: String, dir: String, known: String },
    #[error("find an environment in {0}: it holds no NAME.yaml")]
    Empty(PathBuf),
}

/// What `ENV` may be besides a name.
pub const ALL: &str = "all";

impl Env {
    pub fn new(name: &str) -> Result<Env, EnvError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && name != ALL;
        if !valid {
            return Err(EnvError::BadName(name.to_owned()));
        }
        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = names.get(name) {
            return Ok(Env(known));
        }
        // A handful per process: each name is kept for the process's life.
        let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(kept);
        Ok(Env(kept))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Every environment with a fixture in `fixtures/environments`, by name.
    pub fn discover(fixtures: &Path) -> Result<Vec<Env>, EnvError> {
        let dir = fixtures.join("environments");
        let entries = std::fs::read_dir(&dir).map_err(|source| EnvError::Read { path: dir.clone(), source })?;
        let mut envs = Vec::new();
        for entry in entries {
            let path = entry.map_err(|source| EnvError::Read { path: dir.clone(), source })?.path();
            if path.extension().is_some_and(|x| x == "yaml")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                envs.push(Env::new(stem)?);
            }
        }
        envs.sort();
        if envs.is_empty() { Err(EnvError::Empty(dir)) } else { Ok(envs) }
    }

    /// `ENV` of the command line: `all` (every fixture) or one that has a fixture.
    pub fn select(target: &str, fixtures: &Path) -> Result<Vec<Env>, EnvError> {
        let known = Env::discover(fixtures)?;
        if target == ALL {
            return Ok(known);
        }
        let env = Env::new(target)?;
        if known.contains(&env) {
            Ok(vec![env])
        } else {
            Err(EnvError::Unknown {
                name: target.to_owned(),
                dir: fixtures.join("environments").display().to_string(),
                known: known.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "),
            })
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl FromStr for Env {
    type Err = EnvError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Env::new(s)
    }
}

impl Serialize for Env {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Env::new(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Env;

    #[test]
    fn names_are_validated_and_kept_once() {
        let a = Env::new("qa").expect("a valid name");
        assert_eq!(a, Env::new("qa").expect("again"));
        assert!(std::ptr::eq(a.as_str(), Env::new("qa").expect("again").as_str()), "one copy per name");
        for bad in ["", "all", "QA", "1st", "../x", "a b", "prod_eu"] {
            assert!(Env::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_repository_has_its_three() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let names: Vec<&str> = Env::discover(&fixtures).expect("discover").iter().map(|e| e.as_str()).collect();
        assert_eq!(names, ["dev", "production", "staging"]);
        assert!(Env::select("qa", &fixtures).is_err());
        assert_eq!(Env::select("all", &fixtures).expect("all").len(), 3);
    }
}
