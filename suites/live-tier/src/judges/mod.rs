//! Pure judgements of what the live tier observed: data in, facts out.

pub(crate) mod container_start;
pub(crate) mod disruption;
pub(crate) mod hpa_reading;
pub(crate) mod rate_bucket;
pub(crate) mod restart_log;
pub(crate) mod scale_down;
pub(crate) mod scaling_timeline;
pub(crate) mod spread;
