//! Small SVG pictures of a check's evidence, written beside its JSON.

pub(crate) mod disruption_plot;
pub(crate) mod timeline_plot;
