//! The live checks can fail. One test per mutation in
//! fixtures/mutations/live.yaml, all on one warm kit cluster (the first test
//! creates it, `just live-test` removes it): the mutated infra/ is applied
//! and only the checks the mutation names (and the rollout) run; exactly the
//! named ones must fail. `exhaustive::NAME` (ignored: the nightly job runs
//! them with `--run-ignored only`) runs every live check and requires the
//! rest to pass. Needs the engine, the kit and the application image (`just
//! live-test` builds them first); fails naming what is missing otherwise,
//! never passes without a cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cbam_cluster::docker;
use cbam_cluster::kit;
use cbam_cluster::provider::{KitCluster, KitOptions, registry_beside};
use cbam_cluster::readiness;
use cbam_cluster::timeouts::Timeouts;
use cbam_cluster::tool_image;
use cbam_conformance::mutation::{self, Mutation};
use cbam_error_chain::render as chain;
use cbam_live_tier::checks::{LIVE_CHECKS, find};
use cbam_live_tier::run::run_on;
use cbam_live_tier::run::target::{LiveOptions, Provider};
use cbam_model::outcome::Status;
use cbam_model::profile::Profile;
use cbam_static_tier::render::Kustomize;
use cbam_static_tier::tier::{self as static_tier, StaticOptions};
use libtest_mimic::{Arguments, Failed, Trial};

/// The warm clusters the live mutation tests attach to, one test at a time
/// each (`just live-test` removes them before and after the suite). Two:
/// a test spends most of its time waiting for a rollout, so two clusters on
/// two cores take about half the time of one.
const CLUSTER: &str = "cbam-live-test";
const SLOTS: usize = 2;
const AGENTS: usize = 2;
const ROLLOUT: &str = "live-rollout";
const AUTOSCALING: &str = "live-autoscaling";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Which live checks a test runs.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// The mutation's own checks and the rollout (CI).
    Named,
    /// Every live check; the autoscaling scenario only where named (nightly).
    Exhaustive,
}

/// The live checks `scope` leaves out for `m`.
fn skipped(m: &Mutation, scope: Scope) -> Vec<String> {
    LIVE_CHECKS
        .iter()
        .map(|c| c.id)
        .filter(|id| {
            let named = *id == ROLLOUT || m.fails.iter().any(|f| f == id);
            match scope {
                Scope::Named => !named,
                Scope::Exhaustive => *id == AUTOSCALING && !named,
            }
        })
        .map(str::to_owned)
        .collect()
}

/// A cluster slot no other test process holds: its lock lives as long as
/// this process (one test), and names the cluster `CLUSTER-SLOT`.
fn slot() -> Result<(String, std::fs::File), Failed> {
    let dir = std::env::temp_dir();
    for i in 0..SLOTS {
        let file = std::fs::File::create(dir.join(format!("{CLUSTER}-{i}.lock")))?;
        if file.try_lock().is_ok() {
            return Ok((format!("{CLUSTER}-{i}"), file));
        }
    }
    Err(format!("all {SLOTS} live clusters are in use (run at most {SLOTS} live tests at once)").into())
}

/// The file's bounds, but a rollout or a drain that cannot finish (the
/// expected outcome of some mutations) is waited for 45 s, not 120: three
/// times the 15 s a healthy one takes on a warm kit cluster.
fn mutation_timeouts() -> Timeouts {
    let bound = std::time::Duration::from_secs(45);
    Timeouts { rollout: bound, drain: bound, ..Timeouts::default() }
}

async fn cluster() -> Result<(KitCluster, std::fs::File), Failed> {
    if !docker::engine_reachable().await {
        return Err("no Docker engine answers: run `just engine`".into());
    }
    let image = kit::node_image()?;
    if !docker::image_present(&image).await {
        return Err(format!("node image {image} is not loaded: run `just kit`").into());
    }
    let (name, lock) = slot()?;
    let options = KitOptions {
        name,
        agents: AGENTS,
        image,
        timeouts: Timeouts::default(),
        reuse: true,
        keep: false,
        component_args: Vec::new(),
    };
    let cluster = KitCluster::up(&options).await.map_err(|e| chain(&e))?;
    Ok((cluster, lock))
}

/// A live run on a warm kit cluster of this suite: the built images, the
/// quick profile, the checks SKIP left out, evidence under
/// target/live-mutations/NAME.
fn test_options(name: &str, skip: Vec<String>) -> LiveOptions {
    LiveOptions {
        app_image: root().join("target/image/cbam-api.tar"),
        tool_archive: root().join("target/image/cbam-tool.tar"),
        baseline: None,
        fit: None,
        agents: AGENTS,
        report_dir: root().join("target/live-mutations").join(name),
        profile: Profile::Quick,
        provider: Provider::Kit { reuse: true, node_image: None, upgrade_to: None },
        tool_image: None,
        skip_checks: skip,
        timeouts: mutation_timeouts(),
    }
}

async fn failing_live_checks(m: &Mutation, scope: Scope) -> Result<BTreeSet<String>, Failed> {
    let dir = tempfile::tempdir()?;
    let infra = dir.path().join("infra");
    mutation::copy_tree(&root().join("infra"), &infra)?;
    m.apply(&infra)?;
    let fixtures = match &m.scenarios {
        Some(names) => only_scenarios(dir.path(), names)?,
        None => root().join("fixtures"),
    };
    let options = StaticOptions { envs: vec![m.env], infra, fixtures, kustomize: Kustomize::locate(None)? };
    let run = static_tier::run(&options)?;
    // A mutation that names its scenarios, or a nightly-only check, runs
    // with the nightly profile.
    let profile = if m.scenarios.is_some() || m.fails.iter().any(|f| find(f).is_some_and(|c| c.nightly_only)) {
        Profile::Nightly
    } else {
        Profile::Quick
    };
    let opts = LiveOptions { profile, ..test_options(&m.name, skipped(m, scope)) };
    let (cluster, _slot) = cluster().await?;
    let live = run_on(&run, &opts, &cluster).await.map_err(|e| chain(&e))?;
    for o in live.outcomes.iter().filter(|o| o.status == Status::Fail) {
        eprintln!("  {}", o.line());
    }
    Ok(live.outcomes.iter().filter(|o| o.status == Status::Fail).map(|o| o.check.to_owned()).collect())
}

/// A copy of fixtures/ in `dir` whose autoscaling.yaml keeps only the named
/// scenarios (and no profile but nightly's matters for them).
fn only_scenarios(dir: &Path, names: &[String]) -> Result<PathBuf, Failed> {
    let fixtures = dir.join("fixtures");
    mutation::copy_tree(&root().join("fixtures"), &fixtures)?;
    let path = fixtures.join("autoscaling.yaml");
    let mut doc: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(&path)?)?;
    let scenarios =
        doc.get_mut("scenarios").and_then(|s| s.as_sequence_mut()).ok_or("autoscaling.yaml has scenarios")?;
    scenarios.retain(|s| s.get("name").and_then(|n| n.as_str()).is_some_and(|n| names.iter().any(|w| w == n)));
    if scenarios.len() != names.len() {
        return Err(format!("fixtures/autoscaling.yaml lacks a scenario of {names:?}").into());
    }
    std::fs::write(&path, serde_norway::to_string(&doc)?)?;
    Ok(fixtures)
}

fn run_mutation(m: &Mutation, scope: Scope) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let found = runtime.block_on(failing_live_checks(m, scope))?;
    let expected: BTreeSet<String> = m.fails.iter().cloned().collect();
    if found == expected {
        Ok(())
    } else {
        Err(format!("mutation {} ({scope:?}): expected failing {expected:?}, found {found:?}", m.name).into())
    }
}

/// Every live check is broken by a mutation that CI runs (a nightly-only
/// check, by one the nightly job runs); every id a mutation names is a live
/// check.
fn coverage(mutations: &[Mutation]) -> Result<(), Failed> {
    let known: BTreeSet<&str> = LIVE_CHECKS.iter().map(|c| c.id).collect();
    let nightly_checks = LIVE_CHECKS.iter().filter(|c| c.nightly_only).map(|c| c.id);
    let in_ci: BTreeSet<&str> = mutations
        .iter()
        .filter(|m| m.nightly_only.is_none())
        .flat_map(|m| m.fails.iter().map(String::as_str))
        .chain(nightly_checks.filter(|id| mutations.iter().any(|m| m.fails.iter().any(|f| f == id))))
        .collect();
    let named: BTreeSet<&str> = mutations.iter().flat_map(|m| m.fails.iter().map(String::as_str)).collect();
    let uncovered: Vec<&&str> = known.difference(&in_ci).collect();
    let unknown: Vec<&&str> = named.difference(&known).collect();
    if uncovered.is_empty() && unknown.is_empty() {
        Ok(())
    } else {
        Err(format!("live checks no CI mutation breaks: {uncovered:?}; unknown ids in mutations: {unknown:?}").into())
    }
}

/// A phase of a live run, recognised from the outside by what it leaves on
/// the cluster, at which the run is interrupted.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The environment's namespace exists (objects being applied).
    Apply,
    /// The Deployment exists and is not yet fully Ready.
    Rollout,
    /// A node is cordoned (the drain of live-pdb-drain).
    Drain,
    /// The HPA above minReplicas under the run's load (live-autoscaling).
    Autoscaling,
    /// The run says live-rate-limit's burst has started (nothing on the
    /// cluster shows it).
    RateLimit,
}

impl Phase {
    /// The live checks (besides the rollout) a run needs to reach the phase.
    fn checks(self) -> &'static [&'static str] {
        match self {
            Phase::Apply | Phase::Rollout | Phase::Drain => &["live-pdb-drain"],
            Phase::Autoscaling => &["live-autoscaling"],
            Phase::RateLimit => &["live-rate-limit"],
        }
    }
}

/// What a run may change on a cluster: namespaces, node schedulability and
/// taints. Equal before and after an interrupted run.
async fn snapshot(client: &kube::Client) -> Result<Vec<String>, Failed> {
    use k8s_openapi::api::core::v1::{Namespace, Node};
    let list = kube::api::ListParams::default();
    let mut found: Vec<String> = kube::Api::<Namespace>::all(client.clone())
        .list(&list)
        .await?
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| format!("namespace {}", n.metadata.name.unwrap_or_default()))
        .collect();
    for node in kube::Api::<Node>::all(client.clone()).list(&list).await?.items {
        let spec = node.spec.unwrap_or_default();
        // The node lifecycle controller's own taints (not-ready, unreachable)
        // come and go with node heartbeats, not with a run.
        let taints: Vec<String> = spec
            .taints
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !matches!(t.key.as_str(), "node.kubernetes.io/not-ready" | "node.kubernetes.io/unreachable"))
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        found.push(format!(
            "node {} unschedulable={} taints={taints:?}",
            node.metadata.name.unwrap_or_default(),
            spec.unschedulable.unwrap_or(false)
        ));
    }
    found.sort();
    Ok(found)
}

/// Whether the run has reached `phase` (seen from the cluster, or in what
/// the run printed so far).
async fn reached(client: &kube::Client, phase: Phase, namespace: &str, printed: &str) -> bool {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::{Namespace, Node};
    match phase {
        Phase::Apply => kube::Api::<Namespace>::all(client.clone()).get_opt(namespace).await.is_ok_and(|n| n.is_some()),
        Phase::Rollout => kube::Api::<Deployment>::namespaced(client.clone(), namespace)
            .list(&kube::api::ListParams::default())
            .await
            .is_ok_and(|l| l.items.iter().any(|d| d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) < 3)),
        Phase::Drain => kube::Api::<Node>::all(client.clone())
            .list(&kube::api::ListParams::default())
            .await
            .is_ok_and(|l| l.items.iter().any(|n| n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))),
        Phase::Autoscaling => kube::Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), namespace)
            .list(&kube::api::ListParams::default())
            .await
            .is_ok_and(|l| {
                l.items.iter().any(|h| {
                    let min = h.spec.as_ref().and_then(|s| s.min_replicas).unwrap_or(1);
                    h.status.as_ref().is_some_and(|s| s.desired_replicas > min)
                })
            }),
        Phase::RateLimit => printed.contains("live-rate-limit: burst of"),
    }
}

/// The kit cluster driven as `--cluster existing` (as the release gate
/// drives its staging cluster), interrupted with SIGINT at `phase`: the
/// run must exit non-zero and leave the cluster exactly as it found it.
/// The kit cluster as a user of `--cluster existing` finds it: both archives
/// loaded as `conformance cluster load` loads them, ready (a first test may
/// just have created it), its kubeconfig in DIR. What it holds, and the
/// front door's arguments for a production live run against it.
async fn as_a_user_finds_it(cluster: &KitCluster, dir: &Path) -> Result<(Vec<String>, Vec<String>), Failed> {
    let archive = root().join("target/image/cbam-api.tar");
    let tool = tool_image::archive_beside(&archive);
    cluster.serve_image(&[&archive, &tool], &registry_beside(&archive), Timeouts::default().node_component).await?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, &cluster.kubeconfig_yaml)?;
    readiness::gate(cluster, &Timeouts::default()).await?;
    let before = snapshot(&cluster.client).await?;
    let mut args: Vec<String> = ["production", "--tier", "live", "--cluster", "existing"].map(str::to_owned).to_vec();
    args.extend(["--kubeconfig".into(), kubeconfig.display().to_string()]);
    args.extend(["--report".into(), dir.join("report").display().to_string()]);
    Ok((before, args))
}

async fn interrupted_at(phase: Phase) -> Result<(), Failed> {
    let (cluster, _slot) = cluster().await?;
    let dir = tempfile::tempdir()?;
    let (before, mut args) = as_a_user_finds_it(&cluster, dir.path()).await?;
    // Only what leads to the phase runs.
    for check in LIVE_CHECKS.iter().filter(|c| c.id != ROLLOUT && !phase.checks().contains(&c.id)) {
        args.extend(["--skip-check".into(), check.id.to_owned()]);
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_conformance"))
        .current_dir(root())
        .args(&args)
        .env("CBAM_CACHE", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().ok_or("the run has no pid")?;
    // What the run prints, as it prints it.
    let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (printed, stderr) = (printed.clone(), child.stderr.take().ok_or("no stderr")?);
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut all = printed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                all.push_str(&line);
                all.push('\n');
            }
        })
    };
    let so_far = || printed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    // The autoscaling phase comes after the pipeline gate and the HPA at rest.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(420);
    let mut seen = false;
    while std::time::Instant::now() < deadline && child.try_wait()?.is_none() {
        if reached(&cluster.client, phase, "gl-cbam", &so_far()).await {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if !seen {
        let _ = child.kill().await;
        let out = child.wait_with_output().await?;
        let _ = reader.await;
        return Err(
            format!("the run never reached {phase:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), so_far()).into()
        );
    }
    std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status()?;
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), child.wait_with_output()).await??;
    let _ = reader.await;
    let stderr = so_far();
    let after = snapshot(&cluster.client).await?;
    if out.status.code() != Some(2) || !stderr.contains("interrupted") {
        return Err(format!(
            "interrupted at {phase:?}: expected exit 2 naming the interrupt, found {:?}:\n{stderr}",
            out.status.code()
        )
        .into());
    }
    if before != after {
        return Err(format!(
            "interrupted at {phase:?}, the cluster differs:\nbefore {before:#?}\nafter {after:#?}\n{stderr}"
        )
        .into());
    }
    let journal = dir.path().join("journal");
    if journal.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!("interrupted at {phase:?}: the journal still lists changes after they were undone").into());
    }
    eprintln!("interrupted at {phase:?}: {}", stderr.lines().find(|l| l.contains("interrupted")).unwrap_or(""));
    Ok(())
}

/// The live checks that run a harness tool, one per family: a tool
/// container beside the app (the inspector, the SIGTERM tool) and the
/// in-cluster prober's pod under load (a rollout, a drain).
const TOOL_CHECKS: [&str; 4] =
    ["live-runtime-security", "live-unready-endpoints", "live-rollout-under-load", "live-drain-under-load"];

/// A tool image no registry has: the tool archive's repository at a digest
/// it does not hold.
fn unpullable_tool_image() -> String {
    format!("{}@sha256:{}", tool_image::REPOSITORY, "0".repeat(64))
}

/// Every live check but the rollout and TOOL_CHECKS, as --skip-check ids.
fn all_but_tool_checks() -> Vec<String> {
    LIVE_CHECKS
        .iter()
        .map(|c| c.id)
        .filter(|id| *id != ROLLOUT && !TOOL_CHECKS.contains(id))
        .map(str::to_owned)
        .collect()
}

/// On a cluster the harness created, a tool image the kubelet cannot pull
/// makes each tool check "not verified" naming the image: never a failure.
async fn unpullable_tool_on_an_owned_cluster() -> Result<(), Failed> {
    let options = StaticOptions {
        envs: vec![cbam_model::environment::Env::new("production")?],
        infra: root().join("infra"),
        fixtures: root().join("fixtures"),
        kustomize: Kustomize::locate(None)?,
    };
    let run = static_tier::run(&options)?;
    let image = unpullable_tool_image();
    let opts =
        LiveOptions { tool_image: Some(image.clone()), ..test_options("unpullable-tool-image", all_but_tool_checks()) };
    let (cluster, _slot) = cluster().await?;
    let live = run_on(&run, &opts, &cluster).await.map_err(|e| chain(&e))?;
    // Evidence of how soon each refusal was known (the output of a passing test).
    for (phase, seconds) in live.timings.iter().filter(|(p, _)| TOOL_CHECKS.iter().any(|c| p.ends_with(c))) {
        eprintln!("  {phase}: {seconds:.1} s");
    }
    let failed: Vec<String> = live.outcomes.iter().filter(|o| o.status == Status::Fail).map(|o| o.line()).collect();
    if !failed.is_empty() {
        return Err(format!("an unpullable tool image failed checks:\n{}", failed.join("\n")).into());
    }
    for check in TOOL_CHECKS {
        let named =
            live.outcomes.iter().any(|o| o.check == check && o.status == Status::Skip && o.found.contains(&image));
        if !named {
            let seen: Vec<String> = live.outcomes.iter().filter(|o| o.check == check).map(|o| o.line()).collect();
            return Err(format!("{check}: expected not verified naming {image}, found:\n{}", seen.join("\n")).into());
        }
    }
    Ok(())
}

/// On an existing cluster whose nodes cannot get the tool image, the
/// preflight says so before anything is applied: exit 3, the image named,
/// the tool checks not verified, the cluster left as found. (A digest no
/// registry holds: the real one may be on a reused cluster's nodes from an
/// earlier test.)
async fn tool_image_not_loaded_on_an_existing_cluster() -> Result<(), Failed> {
    let (cluster, _slot) = cluster().await?;
    let image = unpullable_tool_image();
    let dir = tempfile::tempdir()?;
    let (before, mut args) = as_a_user_finds_it(&cluster, dir.path()).await?;
    args.extend(["--tool-image".into(), image.clone()]);
    for check in all_but_tool_checks() {
        args.extend(["--skip-check".into(), check]);
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_conformance"))
        .current_dir(root())
        .args(&args)
        .env("CBAM_CACHE", dir.path())
        .output()
        .await?;
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let after = snapshot(&cluster.client).await?;
    if out.status.code() != Some(3) || !printed.contains(&image) || printed.contains("FAIL ") {
        return Err(format!(
            "expected exit 3 naming {image} and no failure, found {:?}:
{printed}",
            out.status.code()
        )
        .into());
    }
    if before != after {
        return Err(format!(
            "the cluster differs:
before {before:#?}
after {after:#?}"
        )
        .into());
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run_interrupted(phase: Phase) -> Result<(), Failed> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(interrupted_at(phase))
}

fn main() {
    let args = Arguments::from_args();
    let mutations = match mutation::load(&root().join("fixtures/mutations/live.yaml")) {
        Ok(m) => Arc::new(m),
        Err(err) => {
            eprintln!("failed to load the live mutations: {err}");
            std::process::exit(2);
        }
    };
    let mut trials = Vec::new();
    let all = mutations.clone();
    trials.push(Trial::test("every_live_check_is_broken_by_a_ci_mutation", move || coverage(&all)));
    for index in 0..mutations.len() {
        let (named, exhaustive) = (mutations.clone(), mutations.clone());
        let name = &mutations[index].name;
        trials.push(
            Trial::test(format!("mutation::{name}"), move || run_mutation(&named[index], Scope::Named))
                .with_ignored_flag(mutations[index].nightly_only.is_some()),
        );
        if mutations[index].not_exhaustive.is_none() {
            trials.push(
                Trial::test(format!("exhaustive::{name}"), move || run_mutation(&exhaustive[index], Scope::Exhaustive))
                    .with_ignored_flag(true),
            );
        }
    }
    // An existing cluster is left as found whatever phase a run is interrupted in.
    trials.push(Trial::test("tool_image::unpullable_on_an_owned_cluster_is_not_verified", || {
        runtime()?.block_on(unpullable_tool_on_an_owned_cluster())
    }));
    trials.push(Trial::test("tool_image::not_loaded_on_an_existing_cluster_exits_3", || {
        runtime()?.block_on(tool_image_not_loaded_on_an_existing_cluster())
    }));
    trials.push(Trial::test("cleanup::interrupted_during_apply", || run_interrupted(Phase::Apply)));
    trials.push(Trial::test("cleanup::interrupted_during_drain", || run_interrupted(Phase::Drain)));
    // Nightly: each takes minutes (autoscaling waits for the HPA at rest and the pipeline).
    for (name, phase) in
        [("rollout", Phase::Rollout), ("autoscaling", Phase::Autoscaling), ("rate_limit", Phase::RateLimit)]
    {
        trials.push(
            Trial::test(format!("cleanup::interrupted_during_{name}"), move || run_interrupted(phase))
                .with_ignored_flag(true),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}
