//! The live checks can fail: one kit cluster, and for each mutation in
//! fixtures/mutations/live.yaml a live run of the mutated infra/ that must
//! fail exactly the named live checks. Needs the engine, the kit and the
//! application image (`just live-test` builds them first); fails naming
//! what is missing otherwise, never passes without a cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cbam_cluster::docker;
use cbam_cluster::kit;
use cbam_cluster::provider::{KitCluster, KitOptions};
use cbam_cluster::timeouts::Timeouts;
use cbam_conformance::live::{LIVE_CHECKS, LiveOptions, Profile, Provider, run_on};
use cbam_conformance::mutation::{self, Mutation};
use cbam_conformance::outcome::Status;
use cbam_conformance::render::Kustomize;
use cbam_conformance::static_tier::{self, StaticOptions};

const AUTOSCALING: &str = "live-autoscaling";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn failing_live_checks(m: &Mutation, cluster: &KitCluster, report: &Path) -> Result<BTreeSet<String>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let infra = dir.path().join("infra");
    mutation::copy_tree(&root().join("infra"), &infra).map_err(|e| e.to_string())?;
    m.apply(&infra).map_err(|e| e.to_string())?;
    let options = StaticOptions {
        envs: vec![m.env],
        infra,
        fixtures: root().join("fixtures"),
        kustomize: Kustomize::locate(None).map_err(|e| e.to_string())?,
    };
    let run = static_tier::run(&options).map_err(|e| e.to_string())?;
    let opts = LiveOptions {
        app_image: root().join("target/image/cbam-api.tar"),
        fit: None,
        agents: 2,
        report_dir: report.join(&m.name),
        profile: Profile::Quick,
        provider: Provider::Kit { reuse: false },
        tool_image: None,
        // The autoscaling scenario takes minutes: only mutations that name it run it.
        skip_checks: if m.fails.iter().any(|f| f == AUTOSCALING) { Vec::new() } else { vec![AUTOSCALING.to_owned()] },
    };
    let live = run_on(&run, &opts, cluster).await.map_err(|e| e.to_string())?;
    for o in live.outcomes.iter().filter(|o| o.status != Status::Pass) {
        eprintln!("  {}", o.line());
    }
    Ok(live.outcomes.iter().filter(|o| o.status == Status::Fail).map(|o| o.check.to_owned()).collect())
}

#[tokio::test]
async fn every_live_check_fails_on_its_mutation() {
    let mutations = mutation::load(&root().join("fixtures/mutations/live.yaml")).expect("live mutations");
    let broken: BTreeSet<&str> = mutations.iter().flat_map(|m| m.fails.iter().map(String::as_str)).collect();
    let uncovered: Vec<&str> = LIVE_CHECKS.iter().map(|(id, _)| *id).filter(|id| !broken.contains(id)).collect();
    assert!(uncovered.is_empty(), "live checks no mutation breaks: {uncovered:?}");

    assert!(docker::engine_reachable().await, "no Docker engine answers: run `just engine`");
    let image = kit::node_image().unwrap_or_else(|e| panic!("{e}"));
    assert!(docker::image_present(&image).await, "node image {image} is not loaded: run `just kit`");
    let cluster = KitCluster::up(&KitOptions {
        name: "cbam-live-test".into(),
        agents: 2,
        image,
        timeouts: Timeouts::default(),
        reuse: false,
    })
    .await
    .expect("cluster up");
    let report = root().join("target/live-mutations");
    let mut mismatches = Vec::new();
    for m in &mutations {
        let started = std::time::Instant::now();
        let expected: BTreeSet<String> = m.fails.iter().cloned().collect();
        match failing_live_checks(m, &cluster, &report).await {
            Ok(found) if found == expected => {
                eprintln!("mutation {}: ok ({:.0} s)", m.name, started.elapsed().as_secs_f64())
            }
            Ok(found) => {
                mismatches.push(format!("mutation {}: expected failing {expected:?}, found {found:?}", m.name))
            }
            Err(e) => mismatches.push(format!("mutation {}: {e}", m.name)),
        }
    }
    cluster.down().await.expect("cluster down");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
