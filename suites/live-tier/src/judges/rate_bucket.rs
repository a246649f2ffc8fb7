//! The documented rate limit as a token bucket, judged exactly. Traefik's
//! NGINX provider turns `limit-rpm: N` with `limit-burst-multiplier: M` into
//! a bucket of N x M tokens refilled at N per minute per client address
//! (golang.org/x/time/rate): a request takes a token, may wait up to
//! `max_delay` for one (the bucket goes negative), and beyond that is
//! refused with 429 and its token given back. Every request this run sends
//! through the ingress is logged, so the model knows the bucket's state when
//! the rate-limit check starts its burst, and which request of the burst
//! must be the first refused.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request through the ingress: when it was sent and whether it passed
/// the rate limit (any answer but the limiter's own 429).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Passage {
    pub(crate) at: Instant,
    pub(crate) passed: bool,
}

/// Every HTTPS request the run sends through the ingress, and samples of
/// the routing (EndpointSlices and Ingress versions): a change makes the
/// controller rebuild its middlewares, and the bucket starts full again.
#[derive(Debug, Clone, Default)]
pub(crate) struct IngressLog {
    passages: Arc<Mutex<Vec<Passage>>>,
    routing: Arc<Mutex<Vec<(Instant, String)>>>,
}

/// Where the bucket the burst meets may have started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BucketStart {
    /// The last routing change was first seen here (the rebuild is before).
    pub(crate) seen: Instant,
    /// The sample before, still showing the old routing.
    pub(crate) before: Option<Instant>,
}

impl IngressLog {
    pub(crate) fn record(&self, at: Instant, passed: bool) {
        if let Ok(mut log) = self.passages.lock() {
            log.push(Passage { at, passed });
        }
    }

    /// A sample of the routing version at `at`.
    pub(crate) fn routing(&self, at: Instant, version: String) {
        if let Ok(mut samples) = self.routing.lock() {
            samples.push((at, version));
        }
    }

    /// The passages so far, in the order they were sent.
    pub(crate) fn passages(&self) -> Vec<Passage> {
        let mut all = self.passages.lock().map(|l| l.clone()).unwrap_or_default();
        all.sort_by_key(|p| p.at);
        all
    }

    /// The last routing change the samples show, if any.
    pub(crate) fn last_change(&self) -> Option<BucketStart> {
        let samples = self.routing.lock().map(|s| s.clone()).unwrap_or_default();
        samples.windows(2).rev().find(|w| w[0].1 != w[1].1).map(|w| BucketStart { seen: w[1].0, before: Some(w[0].0) })
    }
}

/// A per-minute limit with its burst, as the ingress controller builds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limit {
    pub(crate) per_minute: f64,
    pub(crate) burst: f64,
}

impl Limit {
    fn rate(self) -> f64 {
        self.per_minute / 60.0
    }

    /// Traefik's longest wait before refusing: half a second below one
    /// request per second, else half of one second divided by the whole
    /// requests per second.
    fn max_delay(self) -> f64 {
        let rate = self.rate();
        if rate < 1.0 { 0.5 } else { 0.5 / rate.floor() }
    }
}

/// What the model says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Allowed,
    /// Within `margin` tokens of the threshold: the clocks decide.
    Either,
    Refused,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    limit: Limit,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new(limit: Limit) -> Self {
        Bucket { limit, tokens: limit.burst, last: None }
    }

    /// The fate of a request at `at`; the bucket is updated as it went.
    fn reserve(&mut self, at: Instant, margin: f64, passed: bool) -> Fate {
        if let Some(last) = self.last {
            let elapsed = at.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.limit.rate()).min(self.limit.burst);
        }
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        let after = self.tokens - 1.0;
        let threshold = -self.limit.rate() * self.limit.max_delay();
        let fate = if after >= threshold + margin {
            Fate::Allowed
        } else if after < threshold - margin {
            Fate::Refused
        } else {
            Fate::Either
        };
        // The state follows what really happened (a refusal gives its token back).
        if passed {
            self.tokens = after;
        }
        fate
    }
}

/// The model's reading of one burst.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judgement {
    /// The request of the burst the model refuses first (None: none within it).
    pub(crate) predicted: Option<usize>,
    /// Whether the observed burst is what the bucket allows.
    pub(crate) consistent: bool,
    /// Requests that passed the limiter in the minute before the burst.
    pub(crate) earlier_in_last_minute: usize,
}

/// Judges a burst: `earlier` are the run's passages before it, `burst` the
/// send times of its requests up to and including the first refused one
/// (`refused_last`), `margin` the clock uncertainty in tokens.
pub(crate) fn judge(
    limit: Limit,
    earlier: &[Passage],
    burst: &[Instant],
    refused_last: bool,
    margin: f64,
) -> Judgement {
    let mut bucket = Bucket::new(limit);
    for p in earlier {
        bucket.reserve(p.at, 0.0, p.passed);
    }
    let start = burst.first().copied();
    let earlier_in_last_minute = earlier
        .iter()
        .filter(|p| p.passed && start.is_some_and(|s| s.saturating_duration_since(p.at).as_secs_f64() < 60.0))
        .count();
    // Consistency: each observed answer is one the bucket could give.
    let mut observed = bucket;
    let consistent = burst.iter().enumerate().all(|(i, at)| {
        let refused_here = refused_last && i + 1 == burst.len();
        let fate = observed.reserve(*at, margin, !refused_here);
        !matches!((fate, refused_here), (Fate::Allowed, true) | (Fate::Refused, false))
    });
    Judgement { predicted: predict(bucket, burst), consistent, earlier_in_last_minute }
}

/// The request of the burst the bucket refuses first, the burst continuing
/// at its average pace beyond what was sent.
fn predict(mut bucket: Bucket, burst: &[Instant]) -> Option<usize> {
    let (first, last) = (*burst.first()?, *burst.last()?);
    let pace = last.saturating_duration_since(first) / u32::try_from(burst.len().max(2) - 1).unwrap_or(1);
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small bucket size")]
    let cap = burst.len() + 10 * (bucket.limit.burst as usize).max(1);
    (1..=cap).find(|n| {
        let at = burst
            .get(n - 1)
            .copied()
            .unwrap_or_else(|| last + pace * u32::try_from(n - burst.len()).unwrap_or(u32::MAX));
        bucket.reserve(at, 0.0, true) == Fate::Refused
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DOCUMENTED: Limit = Limit { per_minute: 100.0, burst: 100.0 };

    /// `n` requests `gap_ms` apart from `start`.
    fn burst(start: Instant, n: usize, gap_ms: u64) -> Vec<Instant> {
        (0..n).map(|i| start + Duration::from_millis(gap_ms * i as u64)).collect()
    }

    #[test]
    fn a_fresh_bucket_refuses_the_request_after_the_burst() {
        let t = Instant::now();
        // 101 requests in 10 ms: the 101st finds no token and no refill.
        let j = judge(DOCUMENTED, &[], &burst(t, 101, 0), true, 0.05);
        assert!(j.consistent, "{j:?}");
        assert_eq!(j.predicted, Some(101));
    }

    #[test]
    fn a_limit_of_ninety_fails_against_the_documented_hundred() {
        let t = Instant::now();
        let j = judge(DOCUMENTED, &[], &burst(t, 91, 0), true, 0.05);
        assert!(!j.consistent);
        assert_eq!(j.predicted, Some(101), "the documented bucket refuses the 101st");
    }

    #[test]
    fn refill_during_a_slow_burst_and_the_delay_allowance_move_the_first_refusal() {
        let t = Instant::now();
        // 4 ms apart: 100 requests take 0.4 s (0.67 tokens refilled), so the
        // 101st waits 0.2 s (within 0.5 s) and passes; the 102nd is refused.
        let mut times = burst(t, 101, 4);
        times.push(*times.last().expect("times") + Duration::from_millis(200));
        let j = judge(DOCUMENTED, &[], &times, true, 0.05);
        assert!(j.consistent, "{j:?}");
        assert_eq!(j.predicted, Some(102));
        // Refused at 101 instead: not what this bucket does.
        assert!(!judge(DOCUMENTED, &[], &burst(t, 101, 4), true, 0.05).consistent);
    }

    #[test]
    fn requests_earlier_in_the_minute_bring_the_first_refusal_forward() {
        let t = Instant::now();
        let earlier: Vec<Passage> =
            (0..10).map(|i| Passage { at: t + Duration::from_millis(i), passed: true }).collect();
        let start = t + Duration::from_millis(20);
        let j = judge(DOCUMENTED, &earlier, &burst(start, 91, 0), true, 0.05);
        assert!(j.consistent, "{j:?}");
        assert_eq!((j.predicted, j.earlier_in_last_minute), (Some(91), 10));
        // A minute later the bucket is full again.
        let later = t + Duration::from_secs(61);
        assert_eq!(judge(DOCUMENTED, &earlier, &burst(later, 101, 0), true, 0.05).predicted, Some(101));
    }

    #[test]
    fn a_slower_first_arrival_is_within_a_margin_of_the_longest_round_trip() {
        let t = Instant::now();
        // 102 requests in 0.8 s, the 102nd refused (an existing cluster's
        // run, 2026-12-07): by the send times the refill (1.35 tokens) lets
        // it wait and pass, 0.18 tokens inside the threshold; had the first
        // reached the controller 110 ms late (a port-forward's new stream),
        // the refill was 0.18 tokens less and the refusal is right.
        let times = burst(t, 102, 8);
        assert_eq!(judge(DOCUMENTED, &[], &times, true, 0.05).predicted, Some(103));
        assert!(!judge(DOCUMENTED, &[], &times, true, 0.05).consistent, "too strict for a slow first hop");
        let margin = 100.0 / 60.0 * 0.15; // a longest round trip of 150 ms
        assert!(judge(DOCUMENTED, &[], &times, true, margin).consistent);
        // The margin does not excuse a bucket one token smaller.
        assert!(!judge(DOCUMENTED, &[], &burst(t, 100, 8), true, margin).consistent);
    }

    #[test]
    fn the_last_routing_change_is_where_a_new_bucket_may_start() {
        let log = IngressLog::default();
        let t = Instant::now();
        assert_eq!(log.last_change(), None);
        log.routing(t, "a".into());
        log.routing(t + Duration::from_secs(1), "a".into());
        log.routing(t + Duration::from_secs(2), "b".into());
        log.routing(t + Duration::from_secs(3), "b".into());
        let change = log.last_change().expect("a change");
        assert_eq!((change.before, change.seen), (Some(t + Duration::from_secs(1)), t + Duration::from_secs(2)));
    }

    #[test]
    fn refused_requests_cost_nothing_and_no_refusal_within_the_budget_fails() {
        let t = Instant::now();
        let earlier = [Passage { at: t, passed: false }; 5];
        assert_eq!(judge(DOCUMENTED, &earlier, &burst(t, 101, 0), true, 0.05).predicted, Some(101));
        // 210 requests answered: a bucket of 500 (multiplier 5), not 100.
        let j = judge(DOCUMENTED, &[], &burst(t, 210, 0), false, 0.05);
        assert!(!j.consistent);
        assert_eq!(j.predicted, Some(101));
    }
}
