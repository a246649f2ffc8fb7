//! The expected outcomes (fixtures/), loaded as typed data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::environment::Env;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("read fixture {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse fixture {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("use fixture {path}: it describes environment {found}, not {expected}")]
    WrongEnvironment { path: PathBuf, expected: Env, found: Env },
    #[error("use fixture {path}: scenario {scenario}: {reason}")]
    Scenario { path: PathBuf, scenario: String, reason: String },
}

/// What makes a scenario unusable against the documented HPA, if anything.
fn scenario_problem(s: &Scenario, hpa: &Hpa) -> Option<String> {
    let metrics = ["resource/cpu".to_owned(), "resource/memory".to_owned(), format!("pods/{}", hpa.pods_metric.name)];
    if !metrics.contains(&s.metric) {
        return Some(format!("metric {} is not one of the HPA's ({})", s.metric, metrics.join(", ")));
    }
    if !(hpa.min_replicas < s.reach && s.reach <= hpa.max_replicas) {
        return Some(format!("reach {} is not in ({}, {}]", s.reach, hpa.min_replicas, hpa.max_replicas));
    }
    if !(0.0..=1.0).contains(&s.load.cpu) || s.load.run_seconds <= 0.0 || s.load.max_seconds == 0 {
        return Some("load needs cpu in [0, 1], run_seconds > 0 and max_seconds > 0".to_owned());
    }
    None
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObjectRef {
    pub(crate) kind: String,
    pub(crate) name: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resources {
    pub(crate) requests: BTreeMap<String, String>,
    pub(crate) limits: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(try_from = "ReplicasSpec")]
pub(crate) enum Replicas {
    Fixed(i32),
    Hpa { min: i32, max: i32 },
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct HpaRange {
    min: i32,
    max: i32,
}

/// `{fixed: N}` or `{hpa: {min, max}}`, exactly one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicasSpec {
    fixed: Option<i32>,
    hpa: Option<HpaRange>,
}

impl TryFrom<ReplicasSpec> for Replicas {
    type Error = &'static str;

    fn try_from(spec: ReplicasSpec) -> Result<Self, Self::Error> {
        match (spec.fixed, spec.hpa) {
            (Some(n), None) => Ok(Replicas::Fixed(n)),
            (None, Some(HpaRange { min, max })) => Ok(Replicas::Hpa { min, max }),
            _ => Err("replicas needs exactly one of `fixed` or `hpa`"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Image {
    pub(crate) name: String,
    pub(crate) tag: String,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CorsPolicy {
    Permissive,
    Restricted,
    Strict,
}

impl CorsPolicy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CorsPolicy::Permissive => "permissive",
            CorsPolicy::Restricted => "restricted",
            CorsPolicy::Strict => "strict",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cors {
    pub(crate) policy: CorsPolicy,
    pub(crate) origins: Vec<String>,
    pub(crate) methods: Vec<String>,
    pub(crate) allow_credentials: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppSettings {
    pub(crate) api_docs: bool,
    pub(crate) log_level: String,
    pub(crate) tracing: bool,
    pub(crate) cors: Cors,
}

/// fixtures/environments/ENV.yaml
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Environment {
    pub(crate) environment: Env,
    pub(crate) display_name: String,
    pub(crate) namespace: String,
    pub(crate) replicas: Replicas,
    pub(crate) resources: Resources,
    pub(crate) image: Image,
    /// `Always` for a mutable tag, so a node never keeps a stale build.
    pub(crate) image_pull_policy: String,
    pub(crate) hostname: String,
    pub(crate) tls_issuer: String,
    pub(crate) app: AppSettings,
    pub(crate) governance: bool,
    pub(crate) inventory: Vec<ObjectRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Service {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) type_: String,
    pub(crate) port: i32,
    pub(crate) container_port: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Probes {
    pub(crate) liveness: String,
    pub(crate) readiness: String,
    pub(crate) metrics: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Security {
    pub(crate) run_as_user: i64,
    pub(crate) run_as_group: i64,
    pub(crate) fs_group: i64,
    pub(crate) run_as_non_root: bool,
    pub(crate) read_only_root_filesystem: bool,
    pub(crate) drop_capabilities: Vec<String>,
    pub(crate) seccomp_profile: String,
    pub(crate) allow_privilege_escalation: bool,
    /// The app process's supplementary groups (live-runtime-security).
    pub(crate) supplementary_groups: Vec<i64>,
    /// Mount points the app process may write (its volumes, its scratch).
    pub(crate) writable_mounts: Vec<String>,
    /// Mount points the runtime and kubelet give every container read-write
    /// (kernel filesystems, /etc/hosts, ...): not the app's to document.
    pub(crate) runtime_mounts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rollout {
    pub(crate) max_unavailable: i32,
    pub(crate) max_surge: i32,
    pub(crate) termination_grace_period_seconds: i64,
    pub(crate) anti_affinity_topology_key: String,
    /// How long a pod stays bound to a node that is unreachable or not
    /// ready before it is evicted and replaced (the NoExecute tolerations).
    pub(crate) lost_node_toleration_seconds: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Volume {
    pub(crate) claim: String,
    pub(crate) mount: String,
    pub(crate) storage: String,
    pub(crate) access_mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretRef {
    pub(crate) name: String,
    pub(crate) keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ingress {
    pub(crate) name: String,
    pub(crate) class: String,
    pub(crate) tls_secret: String,
    pub(crate) ssl_redirect: bool,
    pub(crate) rate_limit_per_minute: u32,
    pub(crate) rate_limit_burst_multiplier: u32,
    pub(crate) connect_timeout_seconds: u32,
    /// Request paths that must reach the Service through the Ingress.
    pub(crate) routes: Vec<String>,
}

/// fixtures/workload.yaml
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Workload {
    pub(crate) deployment: String,
    pub(crate) container: String,
    pub(crate) service: Service,
    pub(crate) probes: Probes,
    pub(crate) security: Security,
    pub(crate) rollout: Rollout,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) secret: SecretRef,
    pub(crate) config_map: String,
    pub(crate) service_account: String,
    pub(crate) ingress: Ingress,
    pub(crate) security_headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyType {
    Percent,
    Pods,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScalingPolicy {
    #[serde(rename = "type")]
    pub(crate) type_: PolicyType,
    pub(crate) value: i32,
    pub(crate) period_seconds: i32,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScalingRules {
    pub(crate) stabilization_window_seconds: i32,
    pub(crate) select_policy: SelectPolicy,
    pub(crate) policies: Vec<ScalingPolicy>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Step {
    pub(crate) at: u32,
    pub(crate) replicas: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Predicted {
    pub(crate) scale_up: Vec<Step>,
    pub(crate) scale_down: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetRef {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PodsMetric {
    pub(crate) name: String,
    pub(crate) average_value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Hpa {
    pub(crate) name: String,
    pub(crate) target: TargetRef,
    pub(crate) min_replicas: i32,
    pub(crate) max_replicas: i32,
    pub(crate) cpu_utilization: i32,
    pub(crate) memory_utilization: i32,
    pub(crate) pods_metric: PodsMetric,
    pub(crate) scale_up: ScalingRules,
    pub(crate) scale_down: ScalingRules,
    pub(crate) predicted: Predicted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pdb {
    pub(crate) name: String,
    pub(crate) min_available: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourceQuota {
    pub(crate) name: String,
    pub(crate) hard: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContainerLimits {
    pub(crate) default: BTreeMap<String, String>,
    pub(crate) default_request: BTreeMap<String, String>,
    pub(crate) min: BTreeMap<String, String>,
    pub(crate) max: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitRange {
    pub(crate) name: String,
    pub(crate) container: ContainerLimits,
}

/// fixtures/governance.yaml
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Governance {
    pub(crate) namespace: String,
    /// infra/ files holding it, in apply order.
    pub(crate) files: Vec<String>,
    pub(crate) hpa: Hpa,
    pub(crate) pdb: Pdb,
    pub(crate) resource_quota: ResourceQuota,
    pub(crate) limit_range: LimitRange,
}

/// An open-loop pipeline-run load (fixtures/autoscaling.yaml).
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct Load {
    /// Runs started at once when the load begins.
    pub(crate) burst: u32,
    pub(crate) arrivals_per_minute: f64,
    pub(crate) run_seconds: f64,
    /// Share of one core each run burns.
    pub(crate) cpu: f64,
    pub(crate) memory_mib: u64,
    /// The load stops by itself after this long.
    pub(crate) max_seconds: u64,
    /// The demand: no run is started while this many are accepted or in flight.
    #[serde(default)]
    pub(crate) until_accepted: Option<u32>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProfileName {
    Quick,
    Nightly,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    /// The HPA metric meant to drive this scenario on its own:
    /// `pods/<name>` or `resource/<cpu|memory>`.
    pub(crate) metric: String,
    pub(crate) profiles: Vec<ProfileName>,
    /// Replicas the scenario must reach on the predicted timeline.
    pub(crate) reach: i32,
    /// Before the load: runs held at the metric's target, which must not
    /// scale the HPA up.
    #[serde(default)]
    pub(crate) hold: Option<Hold>,
    /// Before the load (resource metrics): the documented target pinned by
    /// the HPA's own readings just under it and just over it.
    #[serde(default)]
    pub(crate) probe: Option<Probe>,
    pub(crate) load: Load,
}

/// The target probe of a resource metric (live/target_probe.rs).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Probe {
    /// Runs that put the metric just under the target.
    pub(crate) below: ProbeLoad,
    /// Runs added to put it over the target plus the HPA's tolerance.
    pub(crate) above: ProbeLoad,
    /// How long the HPA must keep minReplicas with the metric in the band.
    pub(crate) hold_seconds: u64,
    /// The band's floor as a fraction of the documented target.
    pub(crate) floor: f64,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProbeLoad {
    pub(crate) runs: u32,
    /// Share of one core each run burns.
    pub(crate) cpu: f64,
    pub(crate) memory_mib: u64,
}

/// Runs started before a scenario's load and held through it.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct Hold {
    pub(crate) runs: u32,
    /// How long the HPA must keep minReplicas once it reports the runs.
    pub(crate) seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Autoscaling {
    pub(crate) sample_interval_seconds: u64,
    pub(crate) metric_latency_budget_seconds: u64,
    pub(crate) step_late_tolerance_seconds: u64,
    pub(crate) ready_budget_seconds: u64,
    /// The HPA controller's tolerance (a ratio within 1 +- this is ignored).
    pub(crate) hpa_tolerance: f64,
    pub(crate) hpa_sync_period_seconds: u64,
    pub(crate) scenarios: Vec<Scenario>,
}

/// fixtures/disruption.yaml: the load sent during a disruption and its budgets.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Disruption {
    pub(crate) load: DisruptionLoad,
    pub(crate) budgets: DisruptionBudgets,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisruptionLoad {
    pub(crate) path: String,
    pub(crate) ingress_per_second: f64,
    pub(crate) service_per_second: f64,
    pub(crate) timeout_ms: u64,
    pub(crate) settle_seconds: u64,
    /// Pipeline runs to the Service, each waited for until it is over.
    pub(crate) runs: DisruptionRuns,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisruptionRuns {
    pub(crate) per_second: f64,
    pub(crate) duration_seconds: f64,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisruptionBudgets {
    pub(crate) rollout: Budget,
    pub(crate) drain: Budget,
    pub(crate) node_loss: NodeLossBudget,
}

/// What losing a node may cost: how long after the kill requests may still
/// fail, seconds until the lost pods are replaced and Ready elsewhere,
/// seconds until the node is Ready again once started.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeLossBudget {
    pub(crate) failing_seconds: u64,
    pub(crate) replaced_seconds: u64,
    pub(crate) node_ready_seconds: u64,
}

/// What one disruption may cost, on each load path.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct Budget {
    pub(crate) failed: usize,
    pub(crate) p99_ms: f64,
    /// Pipeline runs started and not seen to complete (not refused).
    pub(crate) runs_cut: usize,
}

/// fixtures/env-contract.yaml: the fields in which environments may differ,
/// per kind (`*`: every kind).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvContract {
    pub(crate) differ: BTreeMap<String, Vec<String>>,
}

/// Everything the static tier compares against.
#[derive(Debug)]
pub struct Expectations {
    pub(crate) environments: BTreeMap<Env, Environment>,
    pub(crate) env_contract: EnvContract,
    pub(crate) workload: Workload,
    pub(crate) governance: Governance,
    pub(crate) autoscaling: Autoscaling,
    pub(crate) disruption: Disruption,
}

fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read { path: path.to_owned(), source })?;
    serde_norway::from_str(&text).map_err(|source| FixtureError::Parse { path: path.to_owned(), source })
}

impl Expectations {
    pub fn load(dir: &Path, envs: &[Env]) -> Result<Self, FixtureError> {
        let mut environments = BTreeMap::new();
        for &env in envs {
            let path = dir.join("environments").join(format!("{env}.yaml"));
            let fixture: Environment = load(&path)?;
            if fixture.environment != env {
                return Err(FixtureError::WrongEnvironment { path, expected: env, found: fixture.environment });
            }
            environments.insert(env, fixture);
        }
        let governance: Governance = load(&dir.join("governance.yaml"))?;
        let path = dir.join("autoscaling.yaml");
        let autoscaling: Autoscaling = load(&path)?;
        for s in &autoscaling.scenarios {
            if let Some(reason) = scenario_problem(s, &governance.hpa) {
                return Err(FixtureError::Scenario { path, scenario: s.name.clone(), reason });
            }
        }
        Ok(Expectations {
            environments,
            env_contract: load(&dir.join("env-contract.yaml"))?,
            workload: load(&dir.join("workload.yaml"))?,
            governance,
            autoscaling,
            disruption: load(&dir.join("disruption.yaml"))?,
        })
    }
}
