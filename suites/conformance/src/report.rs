//! Evidence: summary.json, junit.xml and summary.md under the report
//! directory. Files are written whole (temp file + rename) and stale ones are
//! removed first, so no report left on disk claims a success that did not happen.

use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::live::LiveRun;
use crate::outcome::{Outcome, Status};
use crate::static_tier::StaticRun;

pub const FILES: [&str; 3] = ["summary.json", "junit.xml", "summary.md"];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("write report {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serialise JUnit report")]
    Junit(#[source] quick_junit::SerializeError),
}

/// A tier that did not run, and why (never counted as passed).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub tier: &'static str,
    pub reason: String,
}

fn write_atomic(path: &Path, contents: &str) -> Result<(), ReportError> {
    let io = |source| ReportError::Write { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let temp = path.with_extension("partial");
    std::fs::write(&temp, contents).map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}

/// Removes earlier evidence before a new run writes any.
pub fn clear(dir: &Path) -> Result<(), ReportError> {
    for name in FILES.iter().chain(&["error.txt"]) {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                return Err(ReportError::Write { path, source });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Records an input or environment error (exit 2) in place of a report.
pub fn write_error(dir: &Path, message: &str) -> Result<(), ReportError> {
    let summary = json!({ "status": "error", "error": message });
    write_atomic(&dir.join("summary.json"), &format!("{summary:#}\n"))?;
    write_atomic(&dir.join("error.txt"), &format!("{message}\n"))
}

/// Everything one run established.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub run: &'a StaticRun,
    pub live: Option<&'a LiveRun>,
    pub skipped: &'a [Skipped],
}

impl<'a> Evidence<'a> {
    fn outcomes(&self) -> impl Iterator<Item = &'a Outcome> {
        self.run.outcomes().chain(self.live.into_iter().flat_map(|l| l.outcomes.iter()))
    }
}

/// A check fails if any fact failed; it is skipped if it established nothing
/// (every fact skipped); otherwise it passed.
fn check_status(outcomes: &[&Outcome]) -> Status {
    if outcomes.iter().any(|o| o.status == Status::Fail) {
        Status::Fail
    } else if outcomes.iter().all(|o| o.status == Status::Skip) {
        Status::Skip
    } else {
        Status::Pass
    }
}

fn tier_of(check: &str) -> &'static str {
    if check.starts_with("live-") { "live" } else { "static" }
}

/// Outcomes grouped by (environment, check), in the order they were found.
fn grouped<'a>(evidence: &Evidence<'a>) -> Vec<(String, &'static str, Vec<&'a Outcome>)> {
    let mut groups: Vec<(String, &'static str, Vec<&Outcome>)> = Vec::new();
    for outcome in evidence.outcomes() {
        let env = outcome.env.to_string();
        match groups.iter_mut().find(|(e, c, _)| *e == env && *c == outcome.check) {
            Some((_, _, list)) => list.push(outcome),
            None => groups.push((env, outcome.check, vec![outcome])),
        }
    }
    groups
}

/// (passed, failed, skipped) checks, each environment x check counted once.
pub fn counts(evidence: &Evidence<'_>) -> (usize, usize, usize) {
    let groups = grouped(evidence);
    let of = |s: Status| groups.iter().filter(|(_, _, o)| check_status(o) == s).count();
    (of(Status::Pass), of(Status::Fail), of(Status::Skip) + evidence.skipped.len())
}

fn summary_json(evidence: &Evidence<'_>) -> serde_json::Value {
    let (run, skipped) = (evidence.run, evidence.skipped);
    let groups = grouped(evidence);
    let (passed, failed, skipped_count) = counts(evidence);
    let checks: Vec<_> = groups
        .iter()
        .map(|(env, id, outcomes)| {
            json!({
                "id": id,
                "tier": tier_of(id),
                "env": env,
                "status": check_status(outcomes),
                "facts": outcomes.iter().map(|o| json!({
                    "object": o.object, "subject": o.subject, "expected": o.expected,
                    "found": o.found, "status": o.status,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let environments: Vec<_> = run
        .results
        .iter()
        .map(|r| {
            json!({
                "env": r.env, "objects": r.object_count,
                "rendered_sha256": format!("{:x}", Sha256::digest(r.rendered.as_bytes())),
                "render_ms": r.render_time.as_secs_f64() * 1000.0,
                "hpa_timeline": r.hpa_timeline.as_ref().map(|(up, down)| json!({"scale_up": up, "scale_down": down})),
            })
        })
        .collect();
    let tier_failed =
        |tier: &str| groups.iter().any(|(_, id, o)| tier_of(id) == tier && check_status(o) == Status::Fail);
    let live = evidence.live.map(|l| {
        json!({
            "status": if tier_failed("live") { "fail" } else { "pass" },
            "notes": l.notes,
            "timings_s": l.timings.iter().map(|(phase, secs)| json!({"phase": phase, "seconds": secs})).collect::<Vec<_>>(),
        })
    });
    json!({
        "status": if failed > 0 { "fail" } else { "pass" },
        "counts": { "passed": passed, "failed": failed, "skipped": skipped_count },
        "tiers": {
            "static": { "status": if tier_failed("static") { "fail" } else { "pass" }, "elapsed_ms": run.elapsed.as_secs_f64() * 1000.0 },
            "live": live,
        },
        "skipped": skipped.iter().map(|s| json!({"tier": s.tier, "reason": s.reason})).collect::<Vec<_>>(),
        "tools": { "kustomize": run.kustomize, "harness": env!("CARGO_PKG_VERSION") },
        "environments": environments,
        "checks": checks,
    })
}

fn junit(evidence: &Evidence<'_>) -> Result<String, ReportError> {
    let mut report = Report::new("cbam-conformance");
    let mut suites: Vec<TestSuite> = Vec::new();
    for (env, id, outcomes) in grouped(evidence) {
        let suite_name = format!("{}.{env}", tier_of(id));
        let status = match check_status(&outcomes) {
            Status::Fail => {
                let failures: Vec<String> =
                    outcomes.iter().filter(|o| o.status == Status::Fail).map(|o| o.line()).collect();
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(failures[0].clone());
                status.set_description(failures.join("\n"));
                status
            }
            Status::Skip => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(outcomes.first().map(|o| o.found.clone()).unwrap_or_default());
                status
            }
            Status::Pass => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(id, status);
        case.set_classname(suite_name.clone());
        match suites.iter_mut().find(|s| s.name.as_str() == suite_name) {
            Some(suite) => {
                suite.add_test_case(case);
            }
            None => {
                let mut suite = TestSuite::new(suite_name);
                suite.add_test_case(case);
                suites.push(suite);
            }
        }
    }
    report.add_test_suites(suites);
    for skip in evidence.skipped {
        let mut suite = TestSuite::new(skip.tier);
        let mut status = TestCaseStatus::skipped();
        status.set_message(skip.reason.clone());
        suite.add_test_case(TestCase::new(skip.tier, status));
        report.add_test_suite(suite);
    }
    report.to_string().map_err(ReportError::Junit)
}

fn markdown(evidence: &Evidence<'_>) -> String {
    let (run, skipped) = (evidence.run, evidence.skipped);
    let groups = grouped(evidence);
    let failed: Vec<_> = groups.iter().filter(|(_, _, o)| check_status(o) == Status::Fail).collect();
    let (passed, failed_count, skipped_count) = counts(evidence);
    let mut md = String::from("# CBAM conformance\n\n");
    md.push_str(&format!(
        "**{}**: {passed} checks passed, {failed_count} failed, {skipped_count} skipped (static tier {:.0} ms, kustomize {}).\n\n",
        if failed.is_empty() { "PASS" } else { "FAIL" },
        run.elapsed.as_secs_f64() * 1000.0,
        run.kustomize
    ));
    for (env, id, outcomes) in groups.iter().filter(|(_, _, o)| check_status(o) == Status::Skip) {
        md.push_str(&format!(
            "> **{id} [{env}] not verified**: {}\n\n",
            outcomes.first().map(|o| o.found.as_str()).unwrap_or("")
        ));
    }
    if let Some(live) = evidence.live {
        for note in &live.notes {
            md.push_str(&format!("- {note}\n"));
        }
        md.push('\n');
        for section in &live.sections {
            md.push_str(section);
            md.push('\n');
        }
    }
    for skip in skipped {
        md.push_str(&format!("> **{} tier not run**: {}\n\n", skip.tier, skip.reason));
    }
    if !failed.is_empty() {
        md.push_str("| env | check | object | fact | expected | found |\n|---|---|---|---|---|---|\n");
        for (env, id, outcomes) in &failed {
            for o in outcomes.iter().filter(|o| o.status == Status::Fail) {
                md.push_str(&format!(
                    "| {env} | {id} | {} | {} | {} | {} |\n",
                    o.object,
                    o.subject,
                    o.expected.replace('|', "\\|"),
                    o.found.replace('|', "\\|")
                ));
            }
        }
        md.push('\n');
    }
    for result in &run.results {
        if let Some((up, down)) = &result.hpa_timeline {
            md.push_str(&format!("Predicted HPA timeline ({}): scale-up `{up}`; scale-down `{down}`.\n\n", result.env));
        }
    }
    md
}

pub fn write(dir: &Path, evidence: &Evidence<'_>) -> Result<(), ReportError> {
    for result in &evidence.run.results {
        write_atomic(&dir.join("rendered").join(format!("{}.yaml", result.env)), &result.rendered)?;
    }
    write_atomic(&dir.join("junit.xml"), &junit(evidence)?)?;
    write_atomic(&dir.join("summary.md"), &markdown(evidence))?;
    // Last: summary.json is what a gate reads, so it appears only when the rest is there.
    write_atomic(&dir.join("summary.json"), &format!("{:#}\n", summary_json(evidence)))
}
