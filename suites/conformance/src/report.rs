//! Evidence: summary.json, junit.xml and summary.md under the report
//! directory. Files are written whole (temp file + rename) and stale ones are
//! removed first, so no report left on disk claims a success that did not happen.

use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use crate::checks::CHECKS;
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

fn check_status(outcomes: &[&Outcome]) -> Status {
    if outcomes.iter().any(|o| o.status == Status::Fail) { Status::Fail } else { Status::Pass }
}

/// Outcomes grouped by (environment, check), in report order.
fn grouped(run: &StaticRun) -> Vec<(String, &'static str, Vec<&Outcome>)> {
    let mut groups = Vec::new();
    for result in &run.results {
        for check in CHECKS {
            let outcomes: Vec<&Outcome> = result.outcomes.iter().filter(|o| o.check == check.id).collect();
            if !outcomes.is_empty() {
                groups.push((result.env.to_string(), check.id, outcomes));
            }
        }
    }
    groups
}

fn summary_json(run: &StaticRun, skipped: &[Skipped]) -> serde_json::Value {
    let groups = grouped(run);
    let failed = groups.iter().filter(|(_, _, o)| check_status(o) == Status::Fail).count();
    let checks: Vec<_> = groups
        .iter()
        .map(|(env, id, outcomes)| {
            json!({
                "id": id,
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
                "render_ms": r.render_time.as_secs_f64() * 1000.0,
                "hpa_timeline": r.hpa_timeline.as_ref().map(|(up, down)| json!({"scale_up": up, "scale_down": down})),
            })
        })
        .collect();
    json!({
        "status": if failed > 0 { "fail" } else { "pass" },
        "counts": { "passed": groups.len() - failed, "failed": failed, "skipped": skipped.len() },
        "tiers": {
            "static": { "status": if failed > 0 { "fail" } else { "pass" }, "elapsed_ms": run.elapsed.as_secs_f64() * 1000.0 },
        },
        "skipped": skipped.iter().map(|s| json!({"tier": s.tier, "reason": s.reason})).collect::<Vec<_>>(),
        "tools": { "kustomize": run.kustomize, "harness": env!("CARGO_PKG_VERSION") },
        "environments": environments,
        "checks": checks,
    })
}

fn junit(run: &StaticRun, skipped: &[Skipped]) -> Result<String, ReportError> {
    let mut report = Report::new("cbam-conformance");
    for result in &run.results {
        let mut suite = TestSuite::new(format!("static.{}", result.env));
        for check in CHECKS {
            let outcomes: Vec<&Outcome> = result.outcomes.iter().filter(|o| o.check == check.id).collect();
            if outcomes.is_empty() {
                continue;
            }
            let status = if check_status(&outcomes) == Status::Fail {
                let failures: Vec<String> =
                    outcomes.iter().filter(|o| o.status == Status::Fail).map(|o| o.line()).collect();
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(failures[0].clone());
                status.set_description(failures.join("\n"));
                status
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(check.id, status);
            case.set_classname(format!("static.{}", result.env));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    for skip in skipped {
        let mut suite = TestSuite::new(skip.tier);
        let mut status = TestCaseStatus::skipped();
        status.set_message(skip.reason.clone());
        suite.add_test_case(TestCase::new(skip.tier, status));
        report.add_test_suite(suite);
    }
    report.to_string().map_err(ReportError::Junit)
}

fn markdown(run: &StaticRun, skipped: &[Skipped]) -> String {
    let groups = grouped(run);
    let failed: Vec<_> = groups.iter().filter(|(_, _, o)| check_status(o) == Status::Fail).collect();
    let mut md = String::from("# CBAM conformance\n\n");
    md.push_str(&format!(
        "**{}**: {} checks passed, {} failed, {} tiers skipped (static tier {:.0} ms, kustomize {}).\n\n",
        if failed.is_empty() { "PASS" } else { "FAIL" },
        groups.len() - failed.len(),
        failed.len(),
        skipped.len(),
        run.elapsed.as_secs_f64() * 1000.0,
        run.kustomize
    ));
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

pub fn write(dir: &Path, run: &StaticRun, skipped: &[Skipped]) -> Result<(), ReportError> {
    for result in &run.results {
        write_atomic(&dir.join("rendered").join(format!("{}.yaml", result.env)), &result.rendered)?;
    }
    write_atomic(&dir.join("junit.xml"), &junit(run, skipped)?)?;
    write_atomic(&dir.join("summary.md"), &markdown(run, skipped))?;
    // Last: summary.json is what a gate reads, so it appears only when the rest is there.
    write_atomic(&dir.join("summary.json"), &format!("{:#}\n", summary_json(run, skipped)))
}

/// Counts of checks (environment x check id): passed and failed.
pub fn counts(run: &StaticRun) -> (usize, usize) {
    let groups = grouped(run);
    let failed = groups.iter().filter(|(_, _, o)| check_status(o) == Status::Fail).count();
    (groups.len() - failed, failed)
}
