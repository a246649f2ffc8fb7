//! An open-loop prober: requests are sent on a fixed schedule whether or not
//! earlier ones returned (no coordinated omission: a stalled backend shows
//! as many slow or failed requests, not as a few that waited politely), and
//! every request is recorded with its scheduled and sent times, how it was
//! answered and, where the application says so, which pod answered.
//!
//! The harness runs it in-process through the ingress, and as the static
//! `cbam-prober` binary inside the cluster against the Service.

pub mod http1;
pub mod runs;
pub mod schedule;
pub mod summary;
pub mod tool;

use serde::{Deserialize, Serialize};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An answer below 400.
    Ok,
    /// The connection was not established (refused, unreachable).
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The connection closed or was reset before a whole answer.
    Reset,
    /// No whole answer within the request timeout.
    Timeout,
    /// 500-599: the server (or the proxy in front of it) failed.
    ServerError,
    /// 429: refused for rate or load.
    TooMany,
    /// Any other status of 400 or more.
    ClientError,
}

impl Kind {
    pub fn of_status(status: u16) -> Self {
        match status {
            429 => Kind::TooMany,
            500..=599 => Kind::ServerError,
            400..=499 => Kind::ClientError,
            _ => Kind::Ok,
        }
    }

    pub fn failed(self) -> bool {
        self != Kind::Ok
    }
}

/// What one request came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: Kind,
    pub status: Option<u16>,
    /// The answering pod, from the response header `x-served-by`.
    pub pod: Option<String>,
    /// Whether the answering pod had begun shutting down (`x-pod-draining`).
    pub draining: bool,
    /// The error, for anything but an answer.
    pub error: Option<String>,
    /// The connection's source port (None where the client does not say).
    pub local_port: Option<u16>,
}

impl Answer {
    pub fn status(status: u16, pod: Option<String>) -> Self {
        Answer {
            kind: Kind::of_status(status),
            status: Some(status),
            pod,
            draining: false,
            error: None,
            local_port: None,
        }
    }

    pub fn error(kind: Kind, error: impl Into<String>) -> Self {
        Answer { kind, status: None, pod: None, draining: false, error: Some(error.into()), local_port: None }
    }

    #[must_use]
    pub fn draining(mut self, draining: bool) -> Self {
        self.draining = draining;
        self
    }

    #[must_use]
    pub fn from_port(mut self, local_port: Option<u16>) -> Self {
        self.local_port = local_port;
        self
    }
}

/// Which of the prober's request streams a record belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// GETs of the load path (the application's liveness endpoint).
    #[default]
    Get,
    /// Pipeline runs started and waited for (`runs`).
    Run,
}

impl Stream {
    pub fn is_get(&self) -> bool {
        *self == Stream::Get
    }
}

/// One request: times in milliseconds since the prober started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub scheduled_ms: f64,
    pub sent_ms: f64,
    pub latency_ms: f64,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Stream::is_get")]
    pub stream: Stream,
    /// The answering pod had begun shutting down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// The connection's source port, where the prober knows it (in-cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
}

/// What a prober run cost: its last line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// User + system CPU seconds (None where /proc is not readable).
    pub cpu_seconds: Option<f64>,
    pub wall_seconds: f64,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cpu_seconds {
            Some(cpu) if self.wall_seconds > 0.0 => write!(
                f,
                "{cpu:.2} CPU s in {:.0} s ({:.1} % of one core)",
                self.wall_seconds,
                cpu / self.wall_seconds * 100.0
            ),
            _ => write!(f, "CPU time unknown over {:.0} s", self.wall_seconds),
        }
    }
}

/// The response header through which the application names its pod.
/// A pipeline run started so that it is answered when it is over.
pub const RUN_PATH: &str = "/api/v1/pipeline/runs?wait=true";
pub const SERVED_BY: &str = "x-served-by";
/// The response header a pod that has begun shutting down adds (`true`).
pub const POD_DRAINING: &str = "x-pod-draining";
