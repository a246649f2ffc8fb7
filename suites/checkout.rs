//! Build script shared by every crate of the workspace. The Justfile points
//! all checkouts of this project at one cargo target directory, where cargo
//! judges a workspace crate fresh by file times alone: a second checkout
//! whose files are older than the last build would run the other checkout's
//! code (and its baked-in `CARGO_MANIFEST_DIR`). The Justfile exports the
//! checkout's path as CBAM_CHECKOUT; a change of it rebuilds the workspace's
//! own crates, never the dependencies.
fn main() {
    println!("cargo:rerun-if-env-changed=CBAM_CHECKOUT");
}
