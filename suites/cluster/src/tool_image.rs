//! The harness's tool image: one static binary (`cbam-prober`: the load
//! prober, `idle`, `inspect`, `signal`) on scratch, written by `just image`
//! to target/image/cbam-tool.tar beside the application's archive and served
//! to the nodes the same way. Pods name it by digest, read from the archive
//! itself, so what runs is exactly what was built; its repository is under
//! `.invalid` (RFC 2606), a host no registry answers for: the image is
//! served by the harness, loaded by the user (`conformance cluster load`) or
//! given from their own registry (`--tool-image`), and never pulled from
//! anywhere else.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The repository every tag of the tool image is in (the Justfile's `image`
/// recipe writes it).
pub const REPOSITORY: &str = "cbam-conformance.invalid/tool";

/// The file name of the archive, beside the application's.
pub const ARCHIVE: &str = "cbam-tool.tar";

#[derive(Debug, thiserror::Error)]
pub enum ToolImageError {
    #[error("read the tool image archive {0} (run `just image`)")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("read index.json of the tool image archive {0}")]
    Index(PathBuf, #[source] serde_json::Error),
    #[error("find {REPOSITORY} in the tool image archive {0}: its index.json names no such image")]
    NotNamed(PathBuf),
}

/// The tool image archive beside ARCHIVE (the application's).
pub fn archive_beside(archive: &Path) -> PathBuf {
    archive.with_file_name(ARCHIVE)
}

/// `REPOSITORY@sha256:...`: the tool image of the archive at PATH, by digest.
pub fn reference(path: &Path) -> Result<String, ToolImageError> {
    let read = |e| ToolImageError::Read(path.to_owned(), e);
    let file = std::fs::File::open(path).map_err(read)?;
    let mut tar = tar::Archive::new(file);
    for entry in tar.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        if entry.path().map_err(read)?.to_string_lossy().trim_start_matches("./") != "index.json" {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(read)?;
        let index: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ToolImageError::Index(path.to_owned(), e))?;
        return by_digest(&index).ok_or_else(|| ToolImageError::NotNamed(path.to_owned()));
    }
    Err(ToolImageError::NotNamed(path.to_owned()))
}

/// The digest reference of the first manifest INDEX names in REPOSITORY.
fn by_digest(index: &serde_json::Value) -> Option<String> {
    index["manifests"].as_array()?.iter().find_map(|m| {
        let name = m["annotations"]["io.containerd.image.name"].as_str()?;
        let digest = m["digest"].as_str().filter(|d| d.starts_with("sha256:"))?;
        name.strip_prefix(REPOSITORY)?.starts_with(':').then(|| format!("{REPOSITORY}@{digest}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_tool_image_by_the_digest_of_its_manifest() {
        let index = json!({"manifests": [
            {"digest": "sha256:aa", "annotations": {"io.containerd.image.name": "ghcr.io/x/app:1"}},
            {"digest": "sha256:bb", "annotations": {"io.containerd.image.name": format!("{REPOSITORY}:0.1.0")}}]});
        assert_eq!(by_digest(&index), Some(format!("{REPOSITORY}@sha256:bb")));
    }

    #[test]
    fn another_repository_with_the_same_prefix_is_not_the_tool() {
        let index = json!({"manifests": [
            {"digest": "sha256:aa", "annotations": {"io.containerd.image.name": format!("{REPOSITORY}s:1")}}]});
        assert_eq!(by_digest(&index), None);
    }

    #[test]
    fn a_missing_archive_says_how_to_make_it() {
        let err = reference(Path::new("/nonexistent/cbam-tool.tar")).expect_err("no file");
        assert!(err.to_string().contains("run `just image`"), "{err}");
    }
}
