//! Evidence files are written whole or not at all: a reader (a person, CI,
//! the next run) never sees half a file.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("write evidence file {path}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `contents` beside `path` and renames it into place.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), WriteError> {
    let io = |source| WriteError { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let temp = path.with_extension("partial");
    std::fs::write(&temp, contents).map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_has_no_partial_beside_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a/b/summary.json");
        write_atomic(&path, "{}").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}");
        assert!(!path.with_extension("partial").exists());
    }

    #[test]
    fn an_unwritable_place_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").expect("write");
        let err = write_atomic(&blocker.join("x.json"), "{}").expect_err("a file is not a directory");
        assert_eq!(err.path, blocker.join("x.json"));
    }
}
