//! Kit clusters for the live tier: Docker engine access, the offline kit's
//! node image, a k3s-style provider (server + agents, testcontainers), the
//! platform addons it installs, the readiness gate, and the one waiting
//! primitive with its timeouts; kind clusters by the real kind CLI.

pub mod addons;
pub mod api_client;
pub mod cluster;
pub mod components;
pub mod docker;
pub mod existing;
pub mod exposure;
pub mod k3s;
pub mod kind;
pub mod kit;
pub mod node_exec;
pub mod provider;
pub mod readiness;
pub mod timeouts;
pub mod tool_image;
pub mod wait;
