//! One test per mutation in fixtures/mutations/static.yaml: break a copy of
//! infra/ and require exactly the named checks to fail. Plus coverage: every
//! static check is broken by at least one mutation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cbam_conformance::checks::CHECKS;
use cbam_conformance::mutation::{self, Mutation};
use cbam_conformance::render::Kustomize;
use cbam_conformance::static_tier::{self, StaticOptions};
use libtest_mimic::{Arguments, Failed, Trial};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_mutation(m: &Mutation) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let infra = dir.path().join("infra");
    mutation::copy_tree(&root().join("infra"), &infra)?;
    m.apply(&infra)?;
    let options = StaticOptions {
        envs: vec![m.env],
        infra,
        fixtures: root().join("fixtures"),
        kustomize: Kustomize::locate(None)?,
    };
    let run = static_tier::run(&options)?;
    let failed: BTreeSet<&str> = run.failed_checks(m.env).into_iter().collect();
    let expected: BTreeSet<&str> = m.fails.iter().map(String::as_str).collect();
    if failed == expected {
        return Ok(());
    }
    let lines: Vec<String> =
        run.outcomes().filter(|o| o.status == cbam_conformance::outcome::Status::Fail).map(|o| o.line()).collect();
    Err(format!(
        "mutation {} on {}: expected failing checks {expected:?}, found {failed:?}\n{}",
        m.name,
        m.env,
        lines.join("\n")
    )
    .into())
}

fn coverage(mutations: &[Mutation]) -> Result<(), Failed> {
    let broken: BTreeSet<&str> = mutations.iter().flat_map(|m| m.fails.iter().map(String::as_str)).collect();
    let known: BTreeSet<&str> = CHECKS.iter().map(|c| c.id).collect();
    let uncovered: Vec<&&str> = known.difference(&broken).collect();
    let unknown: Vec<&&str> = broken.difference(&known).collect();
    if uncovered.is_empty() && unknown.is_empty() {
        Ok(())
    } else {
        Err(format!("checks no mutation breaks: {uncovered:?}; unknown check ids in mutations: {unknown:?}").into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let path = root().join("fixtures/mutations/static.yaml");
    let mutations = match mutation::load(&path) {
        Ok(m) => m,
        Err(err) => {
            eprintln!("failed to load mutations: {err}");
            std::process::exit(2);
        }
    };
    let mutations = std::sync::Arc::new(mutations);
    let mut trials = Vec::new();
    for index in 0..mutations.len() {
        let all = mutations.clone();
        let name = format!("mutation::{}", all[index].name);
        trials.push(Trial::test(name, move || run_mutation(&all[index])));
    }
    let all = mutations.clone();
    trials.push(Trial::test("every_check_is_broken_by_a_mutation", move || coverage(&all)));
    libtest_mimic::run(&args, trials).exit();
}
