//! The open-loop schedule: request `n` is due at `n / rate` seconds after
//! the start, sent then (in its own task) whatever the earlier ones are
//! doing. The run ends at `duration`, after `max_requests`, or when told.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{Answer, Record};

/// How many requests, how fast, for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub rate_per_second: f64,
    /// The run stops scheduling here at the latest.
    pub duration: Duration,
    /// ... and after this many requests (bounded even if the clock misbehaves).
    pub max_requests: u64,
}

impl Plan {
    pub fn new(rate_per_second: f64, duration: Duration) -> Self {
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "positive, bounded")]
        let max_requests = (rate_per_second * duration.as_secs_f64()).ceil() as u64 + 1;
        Plan { rate_per_second, duration, max_requests }
    }
}

fn ms(since: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(since).as_secs_f64() * 1000.0
}

/// Sends `send(seq)` on the plan's schedule until the plan ends or `stop`
/// turns true (or its sender goes away), passing each finished request to
/// `out` as it completes; returns once every request sent has finished.
/// `send` must bound its own time (a request timeout).
pub async fn run<F, Fut>(plan: Plan, mut stop: watch::Receiver<bool>, send: F, out: mpsc::UnboundedSender<Record>)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let start = Instant::now();
    let interval = 1.0 / plan.rate_per_second.max(f64::MIN_POSITIVE);
    let mut tasks = JoinSet::new();
    for seq in 0..plan.max_requests {
        #[expect(clippy::cast_precision_loss, reason = "sequence numbers stay far below 2^52")]
        let offset = Duration::from_secs_f64(interval * seq as f64);
        if offset > plan.duration || *stop.borrow() {
            break;
        }
        let due = start + offset;
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
        }
        let sent = Instant::now();
        let request = send(seq);
        let out = out.clone();
        tasks.spawn(async move {
            let answer = request.await;
            let done = Instant::now();
            let _ = out.send(Record {
                seq,
                scheduled_ms: ms(start, due),
                sent_ms: ms(start, sent),
                latency_ms: ms(sent, done),
                kind: answer.kind,
                status: answer.status,
                pod: answer.pod,
                error: answer.error,
                stream: crate::Stream::Get,
                draining: answer.draining,
                local_port: answer.local_port,
            });
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn drain(rx: &mut mpsc::UnboundedReceiver<Record>) -> Vec<Record> {
        let mut records = Vec::new();
        while let Ok(r) = rx.try_recv() {
            records.push(r);
        }
        records.sort_by_key(|r| r.seq);
        records
    }

    #[tokio::test(start_paused = true)]
    async fn sends_on_schedule_even_while_earlier_requests_hang() {
        let (_stop_tx, stop) = watch::channel(false);
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Every request takes 300 ms: a closed loop would send 2, this sends 7.
        let plan = Plan::new(20.0, Duration::from_millis(300));
        let hang = |_| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Answer::status(200, None)
        };
        run(plan, stop, hang, tx).await;
        let records = drain(&mut rx);
        assert_eq!(records.len(), 7);
        for (n, r) in records.iter().enumerate() {
            assert!((r.scheduled_ms - 50.0 * n as f64).abs() < 0.5, "{r:?}");
            assert!(r.sent_ms >= r.scheduled_ms && r.sent_ms - r.scheduled_ms < 40.0, "{r:?}");
            assert!(r.latency_ms >= 299.0, "{r:?}");
            assert_eq!(r.kind, Kind::Ok);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_told() {
        let (stop_tx, stop) = watch::channel(false);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let plan = Plan::new(100.0, Duration::from_secs(60));
        let runner = tokio::spawn(run(plan, stop, |_| async { Answer::status(200, None) }, tx));
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop_tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(2), runner).await.expect("stopped in time").expect("run");
        let n = drain(&mut rx).len();
        assert!((15..=25).contains(&n), "{n} requests in 200 ms at 100/s");
    }
}
