//! The one error-chain formatter (`cbam-error-chain`), where the harness and
//! its tests have always found it.

pub use cbam_error_chain::render;
