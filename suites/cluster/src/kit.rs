//! Where the offline kit lives and which node image it built.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("find the kit's node image: {path} is missing (run `just kit`)")]
    NoNodeImage { path: PathBuf },
}

/// $CBAM_KIT, default ~/.cache/cbam-conformance/kit (as ci/kit/*.sh use).
pub fn dir() -> PathBuf {
    std::env::var_os("CBAM_KIT").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/cbam-conformance/kit")
    })
}

/// A busybox image every kit node has (ci/kit/build.sh), for tool
/// containers such as the harness's ephemeral ones.
pub const TOOL_IMAGE: &str = "docker.io/library/busybox:kit";

/// The node image reference `just kit` recorded.
pub fn node_image() -> Result<String, KitError> {
    recorded_image("node-image")
}

/// The image reference `just kit` recorded in FILE of the kit directory.
pub(crate) fn recorded_image(file: &str) -> Result<String, KitError> {
    let path = dir().join(file);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or(KitError::NoNodeImage { path })
}
