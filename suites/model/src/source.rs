//! Where a fact's value comes from: a file of the checked tree and a line.

use std::fmt;
use std::path::Path;

use serde::Serialize;

/// The documentation file the summary's claims are read from, at the root
/// of the infra tree.
pub const SUMMARY_FILE: &str = "INFRASTRUCTURE_SUMMARY.md";

/// A value's place in the checked tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The file as the user reaches it: under the infra directory as given
    /// (`infra/pdb.yaml` by default, relative to the repository's root).
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// Set when no line sets the value: what the line is instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

impl Source {
    /// The same place, its file under the infra directory `infra` as given.
    pub fn under(self, infra: &Path) -> Source {
        let file = infra.join(&self.file).to_string_lossy().replace('\\', "/");
        Source { file, ..self }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(note) = self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}
