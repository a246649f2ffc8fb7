//! Samples of one autoscaling scenario: the HPA's status (desired replicas,
//! what each metric proposes), the Deployment and the Ready pods, every few
//! seconds (the inputs of the scaling-timeline judge).

use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;

use crate::context::LiveContext;
use crate::judges::hpa_reading::{self, Proposal};
use crate::judges::scaling_timeline::{Demand, Sample};

/// One sampled moment: the judged numbers plus each metric's proposal.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Observation {
    #[serde(flatten)]
    pub(crate) sample: Sample,
    pub(crate) proposals: Vec<Proposal>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AutoscalingError {
    #[error("read HorizontalPodAutoscaler {0}")]
    Hpa(String, #[source] kube::Error),
    #[error("read {0}")]
    Deployment(String, #[source] kube::Error),
}

pub(crate) struct Sampler<'c, 'a> {
    cx: &'c LiveContext<'a>,
    hpas: Api<HorizontalPodAutoscaler>,
    deployments: Api<Deployment>,
    pub(crate) started: Instant,
    last_hpa: Option<HorizontalPodAutoscaler>,
}

impl<'c, 'a> Sampler<'c, 'a> {
    pub(crate) fn new(cx: &'c LiveContext<'a>) -> Self {
        Sampler {
            cx,
            hpas: Api::namespaced(cx.client.clone(), cx.namespace()),
            deployments: Api::namespaced(cx.client.clone(), cx.namespace()),
            started: Instant::now(),
            last_hpa: None,
        }
    }

    /// One sample; `metric` (the scenario's) gives the sample's demand,
    /// reckoned against the documented target, not the live one.
    pub(crate) async fn observe(&mut self, metric: &str) -> Result<Observation, AutoscalingError> {
        let name = &self.cx.governance.hpa.name;
        // The HPA's read window: the Deployment's read after it is not in it.
        let from = self.started.elapsed().as_secs_f64();
        let hpa = self.hpas.get(name).await.map_err(|e| AutoscalingError::Hpa(name.clone(), e))?;
        let at = self.started.elapsed().as_secs_f64();
        let deployment = self
            .deployments
            .get(&self.cx.workload.deployment)
            .await
            .map_err(|e| AutoscalingError::Deployment(self.cx.deployment_label(), e))?;
        let status = hpa.status.clone().unwrap_or_default();
        let proposals = hpa_reading::proposals(&hpa);
        let current_replicas = f64::from(status.current_replicas.unwrap_or(0));
        let demand = proposals
            .iter()
            .find(|p| p.metric == metric)
            .zip(hpa_reading::documented_target(&self.cx.governance.hpa, metric))
            .filter(|(_, target)| *target > 0.0)
            .map(|(p, target)| {
                let ratio = p.current / target;
                // As the controller rounds: the ratio first, an epsilon for float noise.
                #[expect(clippy::cast_possible_truncation, reason = "replica counts are small")]
                let asks = (ratio * current_replicas - 1e-9).ceil() as i32;
                Demand { ratio, asks }
            });
        let observation = Observation {
            sample: Sample {
                from,
                at,
                desired: status.desired_replicas,
                ready: deployment.status.and_then(|s| s.ready_replicas).unwrap_or(0),
                demand,
            },
            proposals,
        };
        self.last_hpa = Some(hpa);
        Ok(observation)
    }

    /// Why the HPA is where it is: its conditions and spec differences.
    pub(crate) fn explain(&self) -> String {
        let Some(hpa) = &self.last_hpa else { return String::new() };
        let mut parts = Vec::new();
        let differences = hpa_reading::differences(hpa, &self.cx.governance.hpa);
        if !differences.is_empty() {
            parts.push(format!("HPA differs from the documentation: {}", differences.join("; ")));
        }
        let conditions = hpa_reading::troubled_conditions(hpa);
        if !conditions.is_empty() {
            parts.push(format!("HPA conditions: {}", conditions.join("; ")));
        }
        let proposals: Vec<String> = hpa_reading::proposals(hpa)
            .iter()
            .map(|p| format!("{} {}/{} -> {}", p.metric, p.current, p.target, p.replicas))
            .collect();
        parts.push(format!(
            "metrics: {}",
            if proposals.is_empty() { "none readable".into() } else { proposals.join(", ") }
        ));
        parts.join("; ")
    }
}
