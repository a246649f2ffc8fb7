//! One test per mutation in fixtures/mutations/static.yaml: break a copy of
//! infra/ and require exactly the named checks to fail. Plus coverage: every
//! static check is broken by at least one mutation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cbam_conformance::mutation::{self, Mutation};
use cbam_model::outcome::{Outcome, Status};
use cbam_static_tier::checks::CHECKS;
use cbam_static_tier::render::Kustomize;
use cbam_static_tier::tier::{self as static_tier, StaticOptions};
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
    let failures: Vec<&Outcome> = run.outcomes().filter(|o| o.status == Status::Fail).collect();
    let lines_text = || failures.iter().map(|o| o.line()).collect::<Vec<_>>().join("\n");
    if failed != expected {
        return Err(format!(
            "mutation {} on {}: expected failing checks {expected:?}, found {failed:?}\n{}",
            m.name,
            m.env,
            lines_text()
        )
        .into());
    }
    // Each edit that writes a line is pointed at: some failure's source is
    // the edited file, at a line the edit wrote. A deletion leaves no line:
    // some failure points into a file it edited (the object's start, saying
    // the value is absent).
    let ranges = m.edited_lines(&root().join("infra"))?;
    let in_copy = |file: &Path| options.infra.join(file).display().to_string();
    let points_into = |file: &str, lines: Option<&std::ops::RangeInclusive<usize>>| {
        failures
            .iter()
            .any(|o| o.source.as_ref().is_some_and(|s| s.file == file && lines.is_none_or(|l| l.contains(&s.line))))
    };
    let deleted: Vec<String> =
        m.edits.iter().filter(|e| e.replace.as_deref() == Some("")).map(|e| in_copy(&e.file)).collect();
    for (edit, lines) in m.edits.iter().zip(&ranges) {
        let file = in_copy(&edit.file);
        if edit.replace.as_deref() != Some("") && !points_into(&file, Some(lines)) {
            return Err(format!(
                "mutation {}: no failure points at the edit, {file} lines {}-{}\n{}",
                m.name,
                lines.start(),
                lines.end(),
                lines_text()
            )
            .into());
        }
    }
    if !deleted.is_empty() && !deleted.iter().any(|f| points_into(f, None)) {
        return Err(format!("mutation {}: no failure points into {deleted:?}\n{}", m.name, lines_text()).into());
    }
    Ok(())
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
