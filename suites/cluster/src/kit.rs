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

/// A busybox image every kit node has (ci/kit/build.sh), for the
/// local-path provisioner's helper pods and the smoke suite's network
/// checks; the harness's own tools are `tool_image`'s.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:1.35.0";

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

#[cfg(test)]
mod tests {
    /// The tag ci/kit/build.sh gives the kit's busybox (BUSYBOX_TAG).
    #[test]
    fn the_busybox_image_is_the_kits() {
        let versions = include_str!("../../../ci/versions.env");
        let tag = versions.lines().find_map(|l| l.strip_prefix("BUSYBOX_TAG=")).expect("BUSYBOX_TAG pinned");
        assert_eq!(super::BUSYBOX_IMAGE, format!("docker.io/library/busybox:{tag}"));
    }
}
