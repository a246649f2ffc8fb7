//! The deployment at rest: the HPA at its minimum with that many pods Ready
//! and none shutting down, and how long coming back to rest may take after
//! a load. The start of every autoscaling scenario, and what a check that
//! disturbs the deployment after them waits for.

use std::time::Duration;

use cbam_cluster::wait::{Poll, WaitError, until};
use cbam_error_chain::render as chain;
use cbam_model::fixtures::Scenario;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;

use crate::app_pods::{app_pods_with_terminating, has_ended};
use crate::context::LiveContext;

/// Waits for the HPA to rest at minReplicas with that many pods Ready, no
/// pod of a scale-down still shutting down (it refuses new runs with 503
/// while the ingress may still send it some: a nightly run's memory probe
/// lost one of its four runs that way, right after the CPU scenario's
/// scale-down) and, when `settled`, its last rescale at least one scale-up
/// period ago (the prediction starts from rest: the HPA's own 1 -> 3 at
/// creation still counts against the policies for a period; a hold at the
/// target does not care, so it runs while that period passes). The start of
/// every scenario; after a previous one this is its scale-down.
pub(crate) async fn at_rest(cx: &LiveContext<'_>, timeout: Duration, settled: bool) -> Result<(), WaitError> {
    let min = cx.governance.hpa.min_replicas;
    let period = cx.governance.hpa.scale_up.policies.iter().map(|p| i64::from(p.period_seconds)).max().unwrap_or(0);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cx.client.clone(), cx.namespace());
    let deployments: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let (hpas, deployments) = (&hpas, &deployments);
    let (hpa, deployment) = (&cx.governance.hpa.name, &cx.workload.deployment);
    until(&format!("HPA {hpa} at {min} replicas, {min} Ready"), timeout, || async move {
        let (desired, since_rescale) = match hpas.get(hpa).await {
            Ok(h) => {
                let status = h.status.unwrap_or_default();
                let since = status.last_scale_time.map(|t| Timestamp::now().as_second() - t.0.as_second());
                (status.desired_replicas, since)
            }
            Err(e) => return Poll::failed(e.to_string(), &e),
        };
        let ready = match deployments.get(deployment).await {
            Ok(d) => d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
            Err(e) => return Poll::failed(e.to_string(), &e),
        };
        // All pods, not `app_pods`: that one leaves the terminating out.
        // Running ones beyond `min` are a scale-down the ReplicaSet has
        // not begun yet (the HPA's status moves first).
        let (running, terminating) = match app_pods_with_terminating(cx).await {
            Ok(pods) => running_and_terminating(&pods),
            Err(e) => return Poll::failed(chain(&e), &e),
        };
        let period_passed = !settled || since_rescale.is_none_or(|s| s >= period);
        let pods_at_min = usize::try_from(min).is_ok_and(|m| running == m);
        if desired == min && ready >= min && pods_at_min && terminating == 0 && period_passed {
            Poll::Done(())
        } else {
            Poll::Pending(format!(
                "desired {desired}, Ready {ready}, {running} pods running, {terminating} shutting down, last rescale {since_rescale:?} s ago"
            ))
        }
    })
    .await
}

/// How many of the pods run and how many are shutting down; those whose
/// containers have ended count as neither.
fn running_and_terminating(pods: &[Pod]) -> (usize, usize) {
    let live = pods.iter().filter(|p| !has_ended(p));
    let terminating = live.clone().filter(|p| p.metadata.deletion_timestamp.is_some()).count();
    (live.count() - terminating, terminating)
}

/// How long the HPA may take to come back to rest after a load whose runs
/// go on for `runs_seconds`: those runs, the scale-down window, one period
/// per replica, and 120 s for the metrics to fall.
pub(crate) fn rest_bound(cx: &LiveContext<'_>, runs_seconds: f64) -> Duration {
    let hpa = &cx.governance.hpa;
    Duration::from_secs(
        120 + u64::try_from(hpa.scale_down.stabilization_window_seconds).unwrap_or(0)
            + 60 * u64::try_from(hpa.max_replicas).unwrap_or(0),
    ) + Duration::from_secs_f64(runs_seconds)
}

/// The bound for coming back to rest after any scenario (a later check that
/// needs the deployment at rest waits this long).
pub(crate) fn rest_after_scenarios(cx: &LiveContext<'_>) -> Duration {
    let longest = cx.autoscaling.scenarios.iter().map(|s| longest_run(cx, s)).fold(0.0, f64::max);
    rest_bound(cx, longest)
}

/// The longest a run of the scenario lasts: the hold's runs are started
/// before the load and outlast it.
#[expect(clippy::cast_precision_loss, reason = "small second counts")]
pub(crate) fn longest_run(cx: &LiveContext<'_>, scenario: &Scenario) -> f64 {
    let hold = scenario.hold.map_or(0, |h| h.seconds + cx.autoscaling.metric_latency_budget_seconds);
    scenario.load.run_seconds + hold as f64
}

/// Waits for rest after the autoscaling scenarios and records it on
/// `object` as "at rest before the SUBJECT"; whether the caller may go on.
/// The disruptions measured from rest (node loss, the upgrade) start here.
pub(crate) async fn record_rest(
    cx: &LiveContext<'_>,
    r: &mut cbam_model::outcome::Recorder,
    object: &str,
    subject: &str,
) -> bool {
    let min = cx.governance.hpa.min_replicas;
    let rest = at_rest(cx, rest_after_scenarios(cx), false).await;
    r.record(
        object,
        &format!("at rest before the {subject}"),
        format!("HPA at {min} replicas, {min} Ready"),
        rest.as_ref().map_or_else(|e| cbam_error_chain::render(e), |()| "at rest".to_owned()),
        rest.is_ok(),
    );
    rest.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_shutting_down_is_not_at_rest() {
        use k8s_openapi::api::core::v1::PodStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let pod = |phase: &str, deleting: bool| {
            let mut p =
                Pod { status: Some(PodStatus { phase: Some(phase.into()), ..PodStatus::default() }), ..Pod::default() };
            p.metadata.deletion_timestamp = deleting.then(|| Time(Timestamp::now()));
            p
        };
        let pods = [pod("Running", false), pod("Running", true), pod("Failed", false), pod("Running", false)];
        assert_eq!(running_and_terminating(&pods), (2, 1));
        assert_eq!(running_and_terminating(&pods[..1]), (1, 0));
    }
}
