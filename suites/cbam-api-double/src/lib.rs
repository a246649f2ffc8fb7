//! A conformance double of the CBAM API: the application's operational
//! contract (health, readiness, metrics, docs, CORS, security headers,
//! pipeline load, graceful shutdown), configured only by the environment
//! the manifests in infra/ give it.

pub mod app;
pub mod config;
pub mod cors;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod readiness;
pub mod server;
