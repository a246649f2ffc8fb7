//! An open-loop pipeline-run load through the real ingress on 127.0.0.1:
//! runs are started on a fixed schedule whatever the responses (a burst,
//! then `arrivals_per_minute`), so the demand does not adapt to the system
//! under test. Bounded in time and in requests, and optionally in accepted
//! runs (the demand it sets: an arrival is skipped while accepted plus
//! in-flight runs are at the cap); stops by itself or when told.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Client;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::judges::rate_bucket::IngressLog;
use crate::traffic::https as edge;
use cbam_error_chain::render as chain;
use cbam_model::fixtures::Load;

/// Requests sent and how they were answered.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    /// 429 from the pod: pipeline busy or out of memory budget (a JSON body).
    busy: AtomicU64,
    /// 429 from the ingress' rate limit (any other body): the load is sized
    /// to stay under it, so a count here means the scenario was distorted.
    rate_limited: AtomicU64,
    /// Other statuses, timeouts and connection errors.
    failed: AtomicU64,
    /// What the first failed request got: a count alone does not say why.
    first_failure: Mutex<Option<String>>,
    /// Sent and not answered yet.
    in_flight: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct LoadStats {
    pub(crate) sent: u64,
    pub(crate) accepted: u64,
    pub(crate) busy: u64,
    pub(crate) rate_limited: u64,
    pub(crate) failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_failure: Option<String>,
}

impl std::fmt::Display for LoadStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs requested: {} accepted, {} refused by a busy pod (429), {} refused by the ingress rate limit, {} failed",
            self.sent, self.accepted, self.busy, self.rate_limited, self.failed
        )?;
        match &self.first_failure {
            Some(first) => write!(f, " (the first: {first})"),
            None => Ok(()),
        }
    }
}

/// What a failed start got: its status and the pod that answered, or the error.
fn failure(response: &Result<reqwest::Response, reqwest::Error>) -> String {
    match response {
        Ok(r) => {
            let pod = r.headers().get(cbam_prober::SERVED_BY).and_then(|v| v.to_str().ok());
            format!("{}{}", r.status(), pod.map(|p| format!(" from {p}")).unwrap_or_default())
        }
        Err(e) => chain(e),
    }
}

/// The most requests a load may send: its burst plus its arrivals over its
/// whole duration (the bound that makes it stop even if the clock misbehaves).
pub(crate) fn request_bound(load: &Load) -> u64 {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small positive counts")]
    let arrivals = (load.arrivals_per_minute * load.max_seconds as f64 / 60.0).ceil() as u64;
    u64::from(load.burst) + arrivals
}

/// The gap between two scheduled arrivals.
pub(crate) fn interarrival(load: &Load) -> Option<Duration> {
    (load.arrivals_per_minute > 0.0).then(|| Duration::from_secs_f64(60.0 / load.arrivals_per_minute))
}

/// A running load; dropping it does not stop it, `stop` does.
pub(crate) struct Generator {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Generator {
    /// Starts the load against `url` (POST), with `client` resolving the
    /// environment's host to the ingress on 127.0.0.1.
    pub(crate) fn start(client: Client, url: String, load: Load, log: IngressLog) -> Self {
        let counters = Arc::new(Counters::default());
        let (stop, mut stopped) = watch::channel(false);
        let body =
            json!({"duration_seconds": load.run_seconds, "cpu": load.cpu, "memory_mib": load.memory_mib}).to_string();
        let task = {
            let counters = counters.clone();
            tokio::spawn(async move {
                let bound = request_bound(&load);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(load.max_seconds);
                let mut ticker = interarrival(&load).map(|gap| {
                    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + gap, gap);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                let mut burst = load.burst;
                loop {
                    if counters.sent.load(Ordering::SeqCst) >= bound || *stopped.borrow() {
                        break;
                    }
                    // Accepted and in-flight runs at the cap: the next arrival is skipped.
                    let full = load.until_accepted.is_some_and(|cap| {
                        counters.accepted.load(Ordering::SeqCst) + counters.in_flight.load(Ordering::SeqCst)
                            >= u64::from(cap)
                    });
                    if burst > 0 && !full {
                        burst -= 1;
                    } else {
                        let Some(ticker) = ticker.as_mut() else { break };
                        tokio::select! {
                            _ = ticker.tick() => {}
                            _ = tokio::time::sleep_until(deadline) => break,
                            _ = stopped.changed() => break,
                        }
                        if full {
                            continue;
                        }
                    }
                    counters.sent.fetch_add(1, Ordering::SeqCst);
                    counters.in_flight.fetch_add(1, Ordering::SeqCst);
                    // Open loop: the response is not awaited before the next arrival.
                    let (client, url, body, counters) = (client.clone(), url.clone(), body.clone(), counters.clone());
                    let log = log.clone();
                    tokio::spawn(async move {
                        let sent = std::time::Instant::now();
                        let response =
                            client.post(&url).header("content-type", "application/json").body(body).send().await;
                        if let Ok(r) = &response {
                            log.record(sent, !edge::rate_limited(r));
                        }
                        let counter = match &response {
                            Ok(r) if r.status().is_success() => &counters.accepted,
                            Ok(r) if edge::rate_limited(r) => &counters.rate_limited,
                            Ok(r) if r.status().as_u16() == 429 => &counters.busy,
                            _ => {
                                if let Ok(mut first) = counters.first_failure.lock() {
                                    first.get_or_insert_with(|| failure(&response));
                                }
                                &counters.failed
                            }
                        };
                        counter.fetch_add(1, Ordering::SeqCst);
                        counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Generator { counters, stop, task }
    }

    /// Counts so far, while the load runs.
    #[cfg(test)]
    fn stats(&self) -> LoadStats {
        self.counters.snapshot()
    }

    /// Stops starting runs (runs already started finish on their own).
    pub(crate) async fn stop(self) -> LoadStats {
        let Generator { counters, stop, task } = self;
        let _ = stop.send(true);
        let _ = task.await;
        counters.snapshot()
    }
}

impl Counters {
    fn snapshot(&self) -> LoadStats {
        LoadStats {
            sent: self.sent.load(Ordering::SeqCst),
            accepted: self.accepted.load(Ordering::SeqCst),
            busy: self.busy.load(Ordering::SeqCst),
            rate_limited: self.rate_limited.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            first_failure: self.first_failure.lock().ok().and_then(|f| f.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbam_cluster::wait::{Poll, until};

    fn load(burst: u32, per_minute: f64, max_seconds: u64) -> Load {
        Load {
            burst,
            arrivals_per_minute: per_minute,
            run_seconds: 10.0,
            cpu: 0.0,
            memory_mib: 0,
            max_seconds,
            until_accepted: None,
        }
    }

    #[test]
    fn bounds_requests_by_burst_and_duration() {
        assert_eq!(request_bound(&load(12, 20.0, 330)), 12 + 110);
        assert_eq!(request_bound(&load(4, 0.0, 60)), 4);
        assert_eq!(interarrival(&load(0, 30.0, 60)), Some(Duration::from_secs(2)));
        assert_eq!(interarrival(&load(3, 0.0, 60)), None);
    }

    /// A local listener stands in for the ingress: the schedule is our logic.
    async fn accepting_listener() -> std::net::SocketAddr {
        listener(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").await
    }

    async fn listener(answer: &'static [u8]) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock.write_all(answer).await;
                });
            }
        });
        addr
    }

    async fn answered(generator: &Generator) -> LoadStats {
        until("every request answered", Duration::from_secs(5), || {
            let s = generator.stats();
            async move {
                if s.sent > 0 && s.accepted + s.busy + s.rate_limited + s.failed == s.sent {
                    Poll::Done(s)
                } else {
                    Poll::Pending(s.to_string())
                }
            }
        })
        .await
        .expect("answers")
    }

    #[tokio::test]
    async fn a_failed_start_keeps_the_first_reason() {
        let addr = listener(b"HTTP/1.1 503 Service Unavailable\r\nx-served-by: p1\r\ncontent-length: 0\r\n\r\n").await;
        let generator =
            Generator::start(Client::new(), format!("http://{addr}/runs"), load(2, 0.0, 5), IngressLog::default());
        let stats = answered(&generator).await;
        assert_eq!((stats.sent, stats.failed), (2, 2), "{stats}");
        assert_eq!(stats.first_failure.as_deref(), Some("503 Service Unavailable from p1"));
        assert!(stats.to_string().ends_with("2 failed (the first: 503 Service Unavailable from p1)"), "{stats}");
        generator.stop().await;
    }

    #[tokio::test]
    async fn sends_the_burst_then_stops_by_itself() {
        let addr = accepting_listener().await;
        let generator =
            Generator::start(Client::new(), format!("http://{addr}/runs"), load(3, 0.0, 5), IngressLog::default());
        assert_eq!(answered(&generator).await, LoadStats { sent: 3, accepted: 3, ..LoadStats::default() });
        assert_eq!(generator.stop().await.sent, 3);
    }

    #[tokio::test]
    async fn starts_no_run_beyond_the_demand_cap() {
        let addr = accepting_listener().await;
        // In flight counts: the burst itself stops at the cap.
        let capped = Load { until_accepted: Some(2), ..load(3, 600.0, 1) };
        let generator = Generator::start(Client::new(), format!("http://{addr}/runs"), capped, IngressLog::default());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(answered(&generator).await, LoadStats { sent: 2, accepted: 2, ..LoadStats::default() });
        assert_eq!(generator.stop().await.sent, 2);
    }
}
