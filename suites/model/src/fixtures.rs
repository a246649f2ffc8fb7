//! The expected outcomes (fixtures/), loaded as typed data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::environment::Env;
use crate::profile::Profile;

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
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(try_from = "ReplicasSpec")]
pub enum Replicas {
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
pub struct Image {
    pub name: String,
    pub tag: String,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CorsPolicy {
    Permissive,
    Restricted,
    Strict,
}

impl CorsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            CorsPolicy::Permissive => "permissive",
            CorsPolicy::Restricted => "restricted",
            CorsPolicy::Strict => "strict",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    pub policy: CorsPolicy,
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    pub allow_credentials: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    pub api_docs: bool,
    pub log_level: String,
    pub tracing: bool,
    pub cors: Cors,
}

/// fixtures/environments/ENV.yaml
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub environment: Env,
    pub display_name: String,
    pub namespace: String,
    pub replicas: Replicas,
    pub resources: Resources,
    pub image: Image,
    /// `Always` for a mutable tag, so a node never keeps a stale build.
    pub image_pull_policy: String,
    pub hostname: String,
    pub tls_issuer: String,
    pub app: AppSettings,
    pub governance: bool,
    pub inventory: Vec<ObjectRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub port: i32,
    pub container_port: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    pub liveness: String,
    pub readiness: String,
    pub metrics: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    pub run_as_user: i64,
    pub run_as_group: i64,
    pub fs_group: i64,
    pub run_as_non_root: bool,
    pub read_only_root_filesystem: bool,
    pub drop_capabilities: Vec<String>,
    pub seccomp_profile: String,
    pub allow_privilege_escalation: bool,
    /// The app process's supplementary groups (live-runtime-security).
    pub supplementary_groups: Vec<i64>,
    /// Mount points the app process may write (its volumes, its scratch).
    pub writable_mounts: Vec<String>,
    /// Mount points the runtime and kubelet give every container read-write
    /// (kernel filesystems, /etc/hosts, ...): not the app's to document.
    pub runtime_mounts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    pub max_unavailable: i32,
    pub max_surge: i32,
    pub termination_grace_period_seconds: i64,
    pub anti_affinity_topology_key: String,
    /// How long a pod stays bound to a node that is unreachable or not
    /// ready before it is evicted and replaced (the NoExecute tolerations).
    pub lost_node_toleration_seconds: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub claim: String,
    pub mount: String,
    pub storage: String,
    pub access_mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    pub name: String,
    pub class: String,
    pub tls_secret: String,
    pub ssl_redirect: bool,
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst_multiplier: u32,
    pub connect_timeout_seconds: u32,
    /// Request paths that must reach the Service through the Ingress.
    pub routes: Vec<String>,
}

/// fixtures/workload.yaml
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub deployment: String,
    pub container: String,
    pub service: Service,
    pub probes: Probes,
    pub security: Security,
    pub rollout: Rollout,
    pub volumes: Vec<Volume>,
    pub secret: SecretRef,
    pub config_map: String,
    pub service_account: String,
    pub ingress: Ingress,
    pub security_headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    Percent,
    Pods,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub type_: PolicyType,
    pub value: i32,
    pub period_seconds: i32,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ScalingRules {
    pub stabilization_window_seconds: i32,
    pub select_policy: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at: u32,
    pub replicas: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicted {
    pub scale_up: Vec<Step>,
    pub scale_down: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodsMetric {
    pub name: String,
    pub average_value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hpa {
    pub name: String,
    pub target: TargetRef,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub cpu_utilization: i32,
    pub memory_utilization: i32,
    pub pods_metric: PodsMetric,
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
    pub predicted: Predicted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pdb {
    pub name: String,
    pub min_available: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceQuota {
    pub name: String,
    pub hard: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerLimits {
    pub default: BTreeMap<String, String>,
    pub default_request: BTreeMap<String, String>,
    pub min: BTreeMap<String, String>,
    pub max: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRange {
    pub name: String,
    pub container: ContainerLimits,
}

/// fixtures/governance.yaml
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    pub namespace: String,
    /// infra/ files holding it, in apply order.
    pub files: Vec<String>,
    pub hpa: Hpa,
    pub pdb: Pdb,
    pub resource_quota: ResourceQuota,
    pub limit_range: LimitRange,
}

/// An open-loop pipeline-run load (fixtures/autoscaling.yaml).
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Runs started at once when the load begins.
    pub burst: u32,
    pub arrivals_per_minute: f64,
    pub run_seconds: f64,
    /// Share of one core each run burns.
    pub cpu: f64,
    pub memory_mib: u64,
    /// The load stops by itself after this long.
    pub max_seconds: u64,
    /// The demand: no run is started while this many are accepted or in flight.
    #[serde(default)]
    pub until_accepted: Option<u32>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// The HPA metric meant to drive this scenario on its own:
    /// `pods/<name>` or `resource/<cpu|memory>`.
    pub metric: String,
    pub profiles: Vec<Profile>,
    /// Replicas the scenario must reach on the predicted timeline.
    pub reach: i32,
    /// Before the load: runs held at the metric's target, which must not
    /// scale the HPA up.
    #[serde(default)]
    pub hold: Option<Hold>,
    /// Before the load (resource metrics): the documented target pinned by
    /// the HPA's own readings just under it and just over it.
    #[serde(default)]
    pub probe: Option<Probe>,
    pub load: Load,
}

impl Scenario {
    /// Whether the scenario runs in `profile`.
    pub fn runs_in(&self, profile: Profile) -> bool {
        self.profiles.contains(&profile)
    }
}

/// The target probe of a resource metric (the live tier's checks/autoscaling/target_probe.rs).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Runs that put the metric just under the target.
    pub below: ProbeLoad,
    /// Runs added to put it over the target plus the HPA's tolerance.
    pub above: ProbeLoad,
    /// How long the HPA must keep minReplicas with the metric in the band.
    pub hold_seconds: u64,
    /// The band's floor as a fraction of the documented target.
    pub floor: f64,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct ProbeLoad {
    pub runs: u32,
    /// Share of one core each run burns.
    pub cpu: f64,
    pub memory_mib: u64,
}

/// Runs started before a scenario's load and held through it.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub runs: u32,
    /// How long the HPA must keep minReplicas once it reports the runs.
    pub seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscaling {
    pub sample_interval_seconds: u64,
    pub metric_latency_budget_seconds: u64,
    pub step_late_tolerance_seconds: u64,
    pub ready_budget_seconds: u64,
    /// The HPA controller's tolerance (a ratio within 1 +- this is ignored).
    pub hpa_tolerance: f64,
    pub hpa_sync_period_seconds: u64,
    pub scenarios: Vec<Scenario>,
}

/// fixtures/disruption.yaml: the load sent during a disruption and its budgets.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Disruption {
    pub load: DisruptionLoad,
    pub budgets: DisruptionBudgets,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DisruptionLoad {
    pub path: String,
    pub ingress_per_second: f64,
    pub service_per_second: f64,
    pub timeout_ms: u64,
    pub settle_seconds: u64,
    /// Pipeline runs to the Service, each waited for until it is over.
    pub runs: DisruptionRuns,
    /// The length of the run held by each pod the harness stops.
    pub held_run_seconds: f64,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct DisruptionRuns {
    pub per_second: f64,
    pub duration_seconds: f64,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DisruptionBudgets {
    pub rollout: Budget,
    pub drain: Budget,
    pub node_loss: NodeLossBudget,
    pub upgrade: UpgradeBudget,
}

/// What replacing every worker node may cost: the requests as a drain's,
/// and seconds per node replaced (join, drain, removal).
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct UpgradeBudget {
    pub failed: usize,
    pub p99_ms: f64,
    pub runs_cut: usize,
    pub per_node_seconds: u64,
    /// The variant run with the HPA held above its minimum.
    pub above_minimum: AboveMinimum,
}

/// The upgrade again with more pipeline runs, so the HPA holds the
/// Deployment above its minimum: the drains meet a budget computed at a
/// higher count, and the replacements must fit the quota and LimitRange.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct AboveMinimum {
    /// Pipeline runs started per second (of the load's length).
    pub runs_per_second: f64,
    /// Ready replicas the HPA reaches before the upgrade begins.
    pub replicas: u32,
}

impl UpgradeBudget {
    /// The requests' share, judged as every other disruption's.
    pub fn requests(&self) -> Budget {
        Budget { failed: self.failed, p99_ms: self.p99_ms, runs_cut: self.runs_cut }
    }
}

/// What losing a node may cost: how long after the kill requests may still
/// fail, seconds until the lost pods are replaced and Ready elsewhere,
/// seconds until the node is Ready again once started.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct NodeLossBudget {
    pub failing_seconds: u64,
    pub replaced_seconds: u64,
    pub node_ready_seconds: u64,
}

/// What one disruption may cost, on each load path.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub failed: usize,
    pub p99_ms: f64,
    /// Pipeline runs started and not seen to complete (not refused).
    pub runs_cut: usize,
}

/// fixtures/env-contract.yaml: the fields in which environments may differ,
/// per kind (`*`: every kind).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EnvContract {
    pub differ: BTreeMap<String, Vec<String>>,
}

/// Everything the static tier compares against.
#[derive(Debug)]
pub struct Expectations {
    pub environments: BTreeMap<Env, Environment>,
    pub env_contract: EnvContract,
    pub workload: Workload,
    pub governance: Governance,
    pub autoscaling: Autoscaling,
    pub disruption: Disruption,
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
