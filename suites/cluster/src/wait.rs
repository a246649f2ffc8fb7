//! The one place that waits: poll a named condition until it holds or its
//! timeout passes, and on timeout report the last state seen. A poll that
//! meets a refusal no retry can change ends the wait at once, with it.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one poll saw.
#[derive(Debug)]
pub enum Poll<T> {
    Done(T),
    /// Not yet; the text says what was seen (reported on timeout).
    Pending(String),
    /// Never: refused for good (the text says by whom and why).
    Refused(String),
}

impl<T> Poll<T> {
    /// What a poll whose request failed with ERROR saw (SEEN): refused
    /// when the API server's answer somewhere in ERROR's chain is a
    /// [`refusal`], which no retry can change; pending otherwise.
    pub fn failed(seen: String, error: &(dyn std::error::Error + 'static)) -> Self {
        if api_refusal_in(error) { Poll::Refused(seen) } else { Poll::Pending(seen) }
    }
}

/// Whether ERROR or one of its sources is a refusal of the API server.
fn api_refusal_in(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        // A source may be the error itself or a Box of it.
        let api = e.downcast_ref::<kube::Error>().or_else(|| e.downcast_ref::<Box<kube::Error>>().map(|b| &**b));
        if let Some(api) = api {
            return refusal(api).is_some();
        }
        next = e.source();
    }
    false
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("wait for {condition}: not true after {timeout:?}; last seen: {last}")]
    TimedOut { condition: String, timeout: Duration, last: String },
    #[error("wait for {condition}: refused, not retried: {reason}")]
    Refused { condition: String, reason: String },
}

impl WaitError {
    /// The last state seen, or the refusal.
    pub fn last(&self) -> &str {
        match self {
            WaitError::TimedOut { last, .. } => last,
            WaitError::Refused { reason, .. } => reason,
        }
    }
}

/// 400s that say "not yet", not "never": a pod's log or exec asked for
/// before its container runs (seen in the smoke suite: "is waiting to
/// start: ContainerCreating", and before the container exists at all "is
/// not available"), or before the pod is scheduled.
const HEALING_BAD_REQUESTS: &[&str] =
    &["is waiting to start", "is not available", "PodInitializing", "does not have a host assigned"];

/// The API server's answer to a request it refused for good, if `error` is
/// one: the object or the request is at fault (400 BadRequest, 401, 403,
/// 405, 406, 413, 415, 422 Invalid), and server-side apply's "failed to
/// create typed patch object", which comes as a 500 although the object is
/// at fault (kubernetes issue 139253). What can heal is not a refusal: the
/// 400s of HEALING_BAD_REQUESTS, 404 (not there yet), 409, 410, 429, other
/// 5xx, transport errors, and the 403 an admission plugin answers while its
/// caches fill after a start.
pub fn refusal(error: &kube::Error) -> Option<&kube::core::Status> {
    let kube::Error::Api(status) = error else { return None };
    let permanent = match status.code {
        400 => !HEALING_BAD_REQUESTS.iter().any(|m| status.message.contains(m)),
        401 | 405 | 406 | 413 | 415 | 422 => true,
        403 => !status.message.contains("not yet ready to handle request"),
        500 => status.message.contains("failed to create typed patch object"),
        _ => false,
    };
    permanent.then_some(&**status)
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
            Ok(Poll::Refused(reason)) => return Err(WaitError::Refused { condition: condition.to_owned(), reason }),
            Err(_) => last = format!("{last} (the last probe itself timed out)"),
        }
        if Instant::now() >= deadline {
            return Err(WaitError::TimedOut { condition: condition.to_owned(), timeout, last });
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
        assert!(err.last().starts_with("poll "), "{err}");
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

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, reason).with_code(code).boxed())
    }

    #[tokio::test]
    async fn a_refusal_ends_the_wait_at_its_first_poll() {
        let refused = api_error(
            500,
            "",
            "failed to create typed patch object (kube-system/bootstrap-token-513048; /v1, Kind=Secret): .stringData.token-id: expected string, got &value.valueUnstructured{Value:513048}",
        );
        let mut polls = 0;
        let err = until("the join objects applied", Duration::from_secs(600), || {
            polls += 1;
            let poll = Poll::<()>::failed(format!("apply: {refused}"), &refused);
            async move { poll }
        })
        .await
        .expect_err("refused");
        assert_eq!(polls, 1);
        assert!(matches!(err, WaitError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("refused, not retried: apply: "), "{err}");
        assert!(err.to_string().contains("expected string, got"), "the API server's words: {err}");
    }

    #[test]
    fn only_what_cannot_heal_is_a_refusal() {
        let cases = [
            (400, "BadRequest", "the object is malformed", true),
            (400, "BadRequest", "container \"w\" in pod \"p\" is waiting to start: ContainerCreating", false),
            (400, "BadRequest", "pod \"p\" does not have a host assigned", false),
            (400, "BadRequest", "container \"w\" in pod \"p\" is not available", false),
            (422, "Invalid", "Secret \"s\" is invalid", true),
            (403, "Forbidden", "secrets is forbidden: User \"u\" cannot create", true),
            (403, "Forbidden", "secrets \"s\" is forbidden: not yet ready to handle request", false),
            (500, "", "failed to create typed patch object (x): .a: expected string", true),
            (500, "InternalError", "Internal error occurred: etcdserver: leader changed", false),
            (503, "ServiceUnavailable", "the server is currently unable to handle the request", false),
            (404, "NotFound", "namespaces \"kube-public\" not found", false),
            (409, "Conflict", "Operation cannot be fulfilled", false),
            (429, "TooManyRequests", "too many requests", false),
        ];
        for (code, reason, message, permanent) in cases {
            assert_eq!(refusal(&api_error(code, reason, message)).is_some(), permanent, "{code} {message}");
        }
        let transport = kube::Error::Service("connection refused".into());
        assert!(refusal(&transport).is_none());
    }

    /// The refusal is found where the harness's errors carry it: as a
    /// source, boxed or not.
    #[test]
    fn a_refusal_is_found_in_the_error_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("apply the tool pod")]
        struct Boxed(#[source] Box<kube::Error>);
        #[derive(Debug, thiserror::Error)]
        #[error("start the tool")]
        struct Outer(#[source] Boxed);
        let invalid = || api_error(422, "Invalid", "Pod \"t\" is invalid");
        let poll = Poll::<()>::failed("x".into(), &Outer(Boxed(Box::new(invalid()))));
        assert!(matches!(poll, Poll::Refused(_)));
        let not_found = Outer(Boxed(Box::new(api_error(404, "NotFound", "pods \"t\" not found"))));
        assert!(matches!(Poll::<()>::failed("x".into(), &not_found), Poll::Pending(_)));
    }
}
