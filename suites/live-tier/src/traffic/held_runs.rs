//! Pipeline runs held by pods about to be stopped. The random runs of a load
//! session last a few seconds: a pod killed soon after SIGTERM still lets
//! every one finish, so a grace period shorter than the application's
//! shutdown timeout would pass. Before the harness itself stops pods (an
//! eviction), one run of the documented length is sent to each of them
//! through the API server's pod proxy and given a moment to start: at its
//! SIGTERM the pod holds a run that needs most of the shutdown timeout, and
//! only a pod let finish it answers 200.

use std::time::{Duration, Instant};

use cbam_prober::{Kind, POD_DRAINING, RUN_PATH, Record, SERVED_BY, Stream};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::context::LiveContext;

/// How long a held run is in flight before the caller stops its pod: the
/// proxy's round trip and the application's start of the run.
const LEAD: Duration = Duration::from_secs(1);

/// Runs sent, each answered when it is over.
#[derive(Debug, Default)]
pub(crate) struct HeldRuns {
    /// Each run's pod and its task.
    runs: Vec<(String, JoinHandle<Record>)>,
}

impl HeldRuns {
    /// Sends one run of `cx.disruption.load.held_run_seconds` to each of
    /// `pods` and returns once they have started (`LEAD`); `t0` is the
    /// session's start, which the records' times count from.
    pub(crate) async fn hold(&mut self, cx: &LiveContext<'_>, pods: &[String], t0: Instant) {
        let seconds = cx.disruption.load.held_run_seconds;
        let port = cx.workload.service.container_port;
        for pod in pods {
            let uri = format!("/api/v1/namespaces/{}/pods/{pod}:{port}/proxy{RUN_PATH}", cx.namespace());
            let body = serde_json::to_vec(&json!({"duration_seconds": seconds})).unwrap_or_default();
            let (client, name, seq) = (cx.client.clone(), pod.clone(), self.runs.len() as u64);
            self.runs.push((
                pod.clone(),
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let request =
                        http::Request::post(uri).header(http::header::CONTENT_TYPE, "application/json").body(body);
                    let answer = match request {
                        Ok(request) => {
                            client.send(request.map(kube::client::Body::from)).await.map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let sent_ms = sent.saturating_duration_since(t0).as_secs_f64() * 1000.0;
                    let mut record = run_record(name, seq, sent_ms, sent.elapsed().as_secs_f64() * 1000.0);
                    record.kind = Kind::Reset;
                    match answer {
                        Ok(response) => {
                            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
                            record.draining = header(POD_DRAINING) == Some("true");
                            if let Some(by) = header(SERVED_BY) {
                                record.pod = Some(by.to_owned());
                            }
                            let status = response.status().as_u16();
                            record.kind = Kind::of_status(status);
                            record.status = Some(status);
                        }
                        Err(e) => record.error = Some(e),
                    }
                    record
                }),
            ));
        }
        tokio::time::sleep(LEAD).await;
    }

    /// Every run's record, waiting at most `limit` for the last answers (a
    /// run not answered by then is recorded as cut, without its answer).
    pub(crate) async fn finish(self, limit: Duration) -> Vec<Record> {
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        for (pod, run) in self.runs {
            let handle = run.abort_handle();
            match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(record)) => records.push(record),
                Ok(Err(e)) => records.push(unanswered(pod, e.to_string())),
                Err(_) => {
                    handle.abort();
                    records.push(unanswered(pod, format!("no answer within {} s", limit.as_secs())));
                }
            }
        }
        records
    }
}

/// A held run's record before its answer is known (no status: cut).
fn run_record(pod: String, seq: u64, sent_ms: f64, latency_ms: f64) -> Record {
    Record {
        seq,
        scheduled_ms: sent_ms,
        sent_ms,
        latency_ms,
        kind: Kind::Timeout,
        status: None,
        pod: Some(pod),
        error: None,
        stream: Stream::Run,
        draining: false,
        local_port: None,
    }
}

fn unanswered(pod: String, error: String) -> Record {
    Record { error: Some(error), ..run_record(pod, 0, 0.0, 0.0) }
}
