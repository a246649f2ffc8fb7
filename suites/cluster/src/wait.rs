//! The one place that waits: poll a named condition until it holds or its
//! timeout passes, and on timeout report the last state seen.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one poll saw.
#[derive(Debug)]
pub enum Poll<T> {
    Done(T),
    /// Not yet; the text says what was seen (reported on timeout).
    Pending(String),
}

#[derive(Debug, thiserror::Error)]
#[error("wait for {condition}: not true after {timeout:?}; last seen: {last}")]
pub struct WaitError {
    pub condition: String,
    pub timeout: Duration,
    pub last: String,
}

/// How often conditions are polled: fast enough for a snappy gate, slow
/// enough not to load a 2-core machine.
const INTERVAL: Duration = Duration::from_millis(500);

pub async fn until<T, F, Fut>(condition: &str, timeout: Duration, mut probe: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = "nothing observed yet".to_owned();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining.max(Duration::from_millis(1)), probe()).await {
            Ok(Poll::Done(value)) => return Ok(value),
            Ok(Poll::Pending(seen)) => last = seen,
            Err(_) => last = format!("{last} (the last probe itself timed out)"),
        }
        if Instant::now() >= deadline {
            return Err(WaitError { condition: condition.to_owned(), timeout, last });
        }
        tokio::time::sleep(INTERVAL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_the_last_state_on_timeout() {
        let mut n = 0;
        let err = until("three to be five", Duration::from_millis(1200), || {
            n += 1;
            let seen = format!("poll {n}");
            async move { Poll::<()>::Pending(seen) }
        })
        .await
        .expect_err("never true");
        assert!(err.to_string().starts_with("wait for three to be five: not true after"), "{err}");
        assert!(err.last.starts_with("poll "), "{err}");
    }

    #[tokio::test]
    async fn returns_the_value_once_true() {
        let mut n = 0;
        let got = until("the third poll", Duration::from_secs(5), || {
            n += 1;
            let done = n >= 3;
            async move { if done { Poll::Done(n) } else { Poll::Pending(format!("{n}")) } }
        })
        .await
        .expect("done");
        assert_eq!(got, 3);
    }
}
