//! The README lists every check id, so users can find what a failure means.

use cbam_conformance::checks::CHECKS;
use cbam_conformance::live::LIVE_CHECKS;

#[test]
fn readme_names_every_check() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let ids = CHECKS.iter().map(|c| c.id).chain(LIVE_CHECKS.iter().map(|(id, _)| *id));
    let missing: Vec<&str> = ids.filter(|id| !readme.contains(&format!("`{id}`"))).collect();
    assert!(missing.is_empty(), "README.md does not name the checks {missing:?}");
}
