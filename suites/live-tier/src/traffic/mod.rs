//! Load sent and samples taken while a check watches the deployment.

pub(crate) mod held_runs;
pub(crate) mod https;
pub(crate) mod load;
pub(crate) mod prober_pod;
pub(crate) mod ready_sampler;
pub(crate) mod tls_versions;
pub(crate) mod under_load;
