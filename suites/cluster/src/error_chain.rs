//! "failed to X: Y: Z" from an error and its sources: the one error-chain
//! formatter of the harness and its tests (error messages say what was being
//! done, "read the cluster", and this adds the "failed to").

use std::error::Error;

pub fn render(err: &dyn Error) -> String {
    let mut text = format!("failed to {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
