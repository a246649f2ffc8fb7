//! Every wait's bound, per operation, from fixtures/timeouts.yaml (compiled
//! in; the file says why each value). One run overrides any of them by name
//! (`--timeout NAME=SECONDS`); nothing is read from the environment.

use std::time::Duration;

use serde::Deserialize;

/// The file, as the harness was built with it.
const FILE: &str = include_str!("../../../fixtures/timeouts.yaml");

/// The struct, the names `--timeout` accepts (in the file's order) and the
/// lookup by name, from one list: a bound is named once.
macro_rules! timeouts {
    ($($name:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Timeouts {
            $(#[serde(with = "seconds")] pub $name: Duration,)*
        }

        /// The names `--timeout` accepts, in the file's order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        impl Timeouts {
            /// The bound called `name`.
            fn field(&mut self, name: &str) -> Option<&mut Duration> {
                match name {
                    $(stringify!($name) => Some(&mut self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

timeouts! {
    node_start,
    node_component,
    crash_window,
    nodes_ready,
    addons_ready,
    rollout,
    namespace_cleanup,
    drain,
    request,
    metrics_pipeline,
    routing_settle,
    node_loss,
    preflight,
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TimeoutError {
    #[error("override timeout {0:?}: expected NAME=SECONDS")]
    Syntax(String),
    #[error("override timeout {name:?}: not one of {known}")]
    Unknown { name: String, known: String },
}

impl Default for Timeouts {
    fn default() -> Self {
        // The file is part of the build, and the unit test below parses it.
        serde_norway::from_str(FILE).expect("fixtures/timeouts.yaml parses (see the unit test)")
    }
}

impl Timeouts {
    /// Applies one `NAME=SECONDS` override.
    pub fn set(&mut self, text: &str) -> Result<(), TimeoutError> {
        let (name, seconds) = text.split_once('=').ok_or_else(|| TimeoutError::Syntax(text.to_owned()))?;
        let seconds: u64 = seconds.trim().parse().map_err(|_| TimeoutError::Syntax(text.to_owned()))?;
        let slot = self
            .field(name.trim())
            .ok_or_else(|| TimeoutError::Unknown { name: name.to_owned(), known: NAMES.join(", ") })?;
        *slot = Duration::from_secs(seconds);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{FILE, NAMES, Timeouts};

    #[test]
    fn the_file_parses_and_names_every_bound() {
        let t = Timeouts::default();
        assert!(t.rollout.as_secs() > 0 && t.request.as_secs() > 0);
        let keys: Vec<&str> = FILE
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(':'))
            .filter_map(|l| l.split(':').next())
            .collect();
        assert_eq!(keys, NAMES, "fixtures/timeouts.yaml and NAMES list the same bounds in the same order");
        let mut probe = Timeouts::default();
        assert!(NAMES.iter().all(|n| probe.field(n).is_some()), "every name has a field");
    }

    #[test]
    fn an_override_sets_one_bound_and_refuses_the_unknown() {
        let mut t = Timeouts::default();
        t.set("rollout=45").expect("a known name");
        assert_eq!(t.rollout.as_secs(), 45);
        assert!(t.set("rollout").is_err() && t.set("rollout=soon").is_err() && t.set("patience=9").is_err());
    }
}
