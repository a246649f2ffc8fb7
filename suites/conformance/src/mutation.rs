//! Breaking a copy of infra/ on purpose (fixtures/mutations/): the evidence
//! that every check can fail.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use cbam_model::environment::Env;

#[derive(Debug, thiserror::Error)]
pub enum MutationError {
    #[error("copy {from} to {to}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read mutations {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse mutations {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("apply mutation {mutation}: {file} contains {count} occurrences of {find:?}, expected exactly 1")]
    NotUnique { mutation: String, file: PathBuf, find: String, count: usize },
    #[error("apply mutation {mutation}: an edit of {file} needs either find+replace or append")]
    Malformed { mutation: String, file: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub file: PathBuf,
    pub find: Option<String>,
    pub replace: Option<String>,
    pub append: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    pub name: String,
    pub env: Env,
    pub edits: Vec<Edit>,
    /// Exactly the checks that must fail on `env`.
    pub fails: Vec<String>,
    /// Why a live mutation runs only in the nightly job (CI runs every other
    /// one): another CI mutation already breaks each check it names.
    #[serde(default)]
    pub nightly_only: Option<String>,
    /// Why the exhaustive run (every live check on this mutation) is left
    /// out for it: its effect reaches checks it does not name at random.
    #[serde(default)]
    pub not_exhaustive: Option<String>,
    /// Live: run only these autoscaling scenarios, with the profile that
    /// has them (the nightly CPU and memory scenarios), where the mutation
    /// bites.
    #[serde(default)]
    pub scenarios: Option<Vec<String>>,
}

pub fn load(path: &Path) -> Result<Vec<Mutation>, MutationError> {
    let text = std::fs::read_to_string(path).map_err(|source| MutationError::Read { path: path.to_owned(), source })?;
    serde_norway::from_str(&text).map_err(|source| MutationError::Parse { path: path.to_owned(), source })
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), MutationError> {
    let io = |source| MutationError::Copy { from: from.to_owned(), to: to.to_owned(), source };
    std::fs::create_dir_all(to).map_err(io)?;
    for entry in std::fs::read_dir(from).map_err(io)? {
        let entry = entry.map_err(io)?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io)?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io)?;
        }
    }
    Ok(())
}

impl Mutation {
    /// The lines (1-based, of the edited file) each edit writes, as applied
    /// to the tree at `original`: a replacement's lines, or the appended
    /// ones; a deletion, the line where the text was.
    pub fn edited_lines(&self, original: &Path) -> Result<Vec<std::ops::RangeInclusive<usize>>, MutationError> {
        let mut ranges = Vec::new();
        for edit in &self.edits {
            let path = original.join(&edit.file);
            let text = std::fs::read_to_string(&path).map_err(|source| MutationError::Copy {
                from: path.clone(),
                to: path.clone(),
                source,
            })?;
            let (offset, written) = match (&edit.find, &edit.replace, &edit.append) {
                (Some(find), Some(replace), None) => (text.find(find.as_str()).unwrap_or(0), replace.as_str()),
                (None, None, Some(append)) => (text.len(), append.as_str()),
                _ => return Err(MutationError::Malformed { mutation: self.name.clone(), file: edit.file.clone() }),
            };
            let first = text[..offset].matches('\n').count() + 1;
            let last = first + written.trim_end_matches('\n').matches('\n').count();
            ranges.push(first..=last);
        }
        Ok(ranges)
    }

    /// Applies every edit to the infra tree at `root`.
    pub fn apply(&self, root: &Path) -> Result<(), MutationError> {
        for edit in &self.edits {
            let path = root.join(&edit.file);
            let io = |source| MutationError::Copy { from: path.clone(), to: path.clone(), source };
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let changed = match (&edit.find, &edit.replace, &edit.append) {
                (Some(find), Some(replace), None) => {
                    let count = text.matches(find.as_str()).count();
                    if count != 1 {
                        return Err(MutationError::NotUnique {
                            mutation: self.name.clone(),
                            file: edit.file.clone(),
                            find: find.clone(),
                            count,
                        });
                    }
                    text.replacen(find.as_str(), replace, 1)
                }
                (None, None, Some(append)) => format!("{text}{append}"),
                _ => {
                    return Err(MutationError::Malformed { mutation: self.name.clone(), file: edit.file.clone() });
                }
            };
            std::fs::write(&path, changed).map_err(io)?;
        }
        Ok(())
    }
}
