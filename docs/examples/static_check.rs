// docs/adding-a-check.md's static example, compiled as a module of
// cbam-static-tier's checks (suites/static-tier/src/checks.rs).
use cbam_model::outcome::Recorder;

use crate::checks::{Check, Scope};
use crate::context::Context;

/// The judge: one fact per value, the expected value from the fixtures.
pub(crate) fn my_check(cx: &Context, r: &mut Recorder) {
    let object = format!("overlay {}", cx.env);
    let found = cx.overlay.len();
    r.record(&object, "objects", "at least one", found.to_string(), found > 0);
}

/// Its row, as `checks!` writes it in `CHECKS`:
/// `"my-check", Every, my_module::my_check, "what it proves";`
pub(crate) const ROW: Check = Check { id: "my-check", about: "what it proves", scope: Scope::Every, run: my_check };
