// docs/adding-a-check.md's live example, compiled as a module of
// cbam-live-tier's checks (suites/live-tier/src/checks/mod.rs).
use cbam_model::outcome::Recorder;

use crate::app_pods::{app_pods, is_ready};
use crate::catalog::{LiveCheck, Order, Role, Scope};
use crate::context::LiveContext;

/// The check: reads the cluster through the layers below `checks/`, and
/// records one fact per observed value; what it cannot establish is
/// `r.skip` (not verified), never a pass.
pub(crate) async fn my_check(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = cx.deployment_label();
    match app_pods(cx).await {
        Ok(pods) => {
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            r.record(&object, "Ready pods", "at least one", ready.to_string(), ready > 0);
        }
        Err(e) => r.skip(&object, "Ready pods", "at least one", cbam_error_chain::render(&e)),
    }
}

/// Its row in `LIVE_CHECKS`.
pub(crate) const ROW: LiveCheck = LiveCheck {
    id: "live-my-check",
    about: "what it observes",
    scope: Scope::Every,
    role: Role::NeedsRollout,
    order: Order::Free,
    nightly_only: false,
    needs: &[],
    run: |cx, r| Box::pin(my_check(cx, r)),
};
