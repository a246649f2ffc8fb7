//! Whether a container the harness started can still start: the kubelet's
//! waiting reasons that no retry changes (its image, its settings), read
//! at once rather than waited out.

use k8s_openapi::api::core::v1::{ContainerState, Pod};

/// A waiting reason no retry of the kubelet can change: the container's
/// settings or image, as given.
const CANNOT_START: [&str; 7] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
];

/// Why a tool container did not do its job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ToolFailure {
    #[error("{reason}: {message}")]
    CannotStart { reason: String, message: String },
    #[error("exited {code} {detail}")]
    Exited { code: i32, detail: String },
}

/// How the tool's state reads: Ok(true) ended with exit 0, Ok(false) not
/// yet, Err when it cannot start or failed.
pub(crate) fn reading(state: Option<&ContainerState>) -> Result<bool, ToolFailure> {
    let Some(state) = state else { return Ok(false) };
    if let Some(t) = &state.terminated {
        return if t.exit_code == 0 {
            Ok(true)
        } else {
            let detail = t.message.clone().or_else(|| t.reason.clone()).unwrap_or_default();
            Err(ToolFailure::Exited { code: t.exit_code, detail })
        };
    }
    match &state.waiting {
        Some(w) if CANNOT_START.contains(&w.reason.as_deref().unwrap_or_default()) => Err(ToolFailure::CannotStart {
            reason: w.reason.clone().unwrap_or_default(),
            message: w.message.clone().unwrap_or_default(),
        }),
        _ => Ok(false),
    }
}

/// The state of POD's first container (a tool pod has one).
pub(crate) fn first_state(pod: &Pod) -> Option<&ContainerState> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()
}

/// A pod in PHASE whose one container is in STATE (the tool pods' tests).
#[cfg(test)]
pub(crate) fn pod_in(phase: &str, state: Option<ContainerState>) -> Pod {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
    Pod {
        status: Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus { state, ..ContainerStatus::default() }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStateWaiting};

    use super::*;

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.into()), message: Some("m".into()) }),
            ..ContainerState::default()
        }
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated { exit_code: code, ..ContainerStateTerminated::default() }),
            ..ContainerState::default()
        }
    }

    #[test]
    fn a_tool_that_cannot_start_is_known_at_once() {
        let refused = reading(Some(&waiting("CreateContainerConfigError"))).expect_err("cannot start");
        assert_eq!(refused.to_string(), "CreateContainerConfigError: m");
        assert_eq!(reading(Some(&waiting("ContainerCreating"))), Ok(false));
        assert_eq!(reading(None), Ok(false));
        assert_eq!(reading(Some(&exited(0))), Ok(true));
        assert!(reading(Some(&exited(1))).is_err());
    }
}
