//! Evidence: summary.json, junit.xml and summary.md under the report
//! directory. A run writes into a fresh staging directory that replaces the
//! report directory whole at the end, so a report directory always holds
//! exactly one run's evidence, and nothing half-written claims success.

use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;
use sha2::{Digest, Sha256};

use cbam_model::evidence_file::{WriteError, write_atomic};
use cbam_model::outcome::{Outcome, Status};

use crate::evidence::Evidence;

pub const FILES: [&str; 4] = ["summary.json", "junit.xml", "summary.md", "results.sarif"];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("write report {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] WriteError),
    #[error("serialise JUnit report")]
    Junit(#[source] quick_junit::SerializeError),
    #[error(
        "use {path} as the report directory: it holds {entry:?}, which no report writes (pass an empty or report directory)"
    )]
    NotAReport { path: PathBuf, entry: String },
}

/// What a report directory may hold: anything else means the user pointed
/// `--report` at a directory of their own, which is never removed.
const REPORT_ENTRIES: [&str; 9] = [
    "summary.json",
    "junit.xml",
    "summary.md",
    "results.sarif",
    "error.txt",
    "rendered",
    "autoscaling",
    "disruption",
    "diagnostics",
];

/// One run's evidence, written to `<dir>.partial` and swapped in whole.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    path: PathBuf,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_else(|| "report".into());
    name.push(suffix);
    dir.with_file_name(name)
}

fn remove_dir(path: &Path) -> Result<(), ReportError> {
    match std::fs::remove_dir_all(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
            Err(ReportError::Write { path: path.to_owned(), source })
        }
        _ => Ok(()),
    }
}

impl Staging {
    /// A fresh staging directory beside `target` (a stale one from an
    /// interrupted run is removed); refuses a target that is not a report.
    pub fn create(target: &Path) -> Result<Self, ReportError> {
        let io = |source| ReportError::Write { path: target.to_owned(), source };
        if target.is_dir() {
            for entry in std::fs::read_dir(target).map_err(io)? {
                let name = entry.map_err(io)?.file_name().to_string_lossy().into_owned();
                if !REPORT_ENTRIES.contains(&name.as_str()) {
                    return Err(ReportError::NotAReport { path: target.to_owned(), entry: name });
                }
            }
        }
        let path = sibling(target, ".partial");
        remove_dir(&path)?;
        std::fs::create_dir_all(&path).map_err(|source| ReportError::Write { path: path.clone(), source })?;
        Ok(Staging { target: target.to_owned(), path })
    }

    /// Where this run writes its evidence.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the report directory with this run's evidence.
    pub fn publish(self) -> Result<(), ReportError> {
        let old = sibling(&self.target, ".old");
        remove_dir(&old)?;
        if self.target.exists() {
            std::fs::rename(&self.target, &old)
                .map_err(|source| ReportError::Write { path: self.target.clone(), source })?;
        }
        std::fs::rename(&self.path, &self.target)
            .map_err(|source| ReportError::Write { path: self.target.clone(), source })?;
        remove_dir(&old)
    }
}

/// Records an input or environment error (exit 2) in place of a report.
pub fn write_error(dir: &Path, message: &str) -> Result<(), ReportError> {
    let summary = json!({ "status": "error", "error": message });
    write_atomic(&dir.join("summary.json"), &format!("{summary:#}\n"))?;
    Ok(write_atomic(&dir.join("error.txt"), &format!("{message}\n"))?)
}

/// A check fails if any fact failed; it is not verified if any fact could
/// not be established (a partly verified check is not a pass); skipped by
/// request if the invocation did not ask for it; otherwise it passed.
fn check_status(outcomes: &[&Outcome]) -> Status {
    if outcomes.iter().any(|o| o.status == Status::Fail) {
        Status::Fail
    } else if outcomes.iter().any(|o| o.status == Status::Skip) {
        Status::Skip
    } else if !outcomes.is_empty() && outcomes.iter().all(|o| o.status == Status::Excluded) {
        Status::Excluded
    } else {
        Status::Pass
    }
}

/// What a run established as a whole; the exit code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check asked for ran and passed (exit 0).
    Pass,
    /// At least one check failed (exit 1).
    Fail,
    /// Nothing failed, but something asked for was not verified (exit 3).
    Incomplete,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Incomplete => 3,
        }
    }

    pub fn headline(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Incomplete => "INCOMPLETE",
        }
    }
}

/// Checks by status, each environment x check counted once; a tier that did
/// not run counts as one check not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub not_verified: usize,
    pub excluded: usize,
}

impl Counts {
    pub fn verdict(self) -> Verdict {
        if self.failed > 0 {
            Verdict::Fail
        } else if self.not_verified > 0 {
            Verdict::Incomplete
        } else {
            Verdict::Pass
        }
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

pub fn counts(evidence: &Evidence<'_>) -> Counts {
    let groups = grouped(evidence);
    let of = |s: Status| groups.iter().filter(|(_, _, o)| check_status(o) == s).count();
    Counts {
        passed: of(Status::Pass),
        failed: of(Status::Fail),
        not_verified: of(Status::Skip) + evidence.skipped.len(),
        excluded: of(Status::Excluded),
    }
}

/// A tier's verdict from its own checks.
fn tier_verdict(groups: &[(String, &'static str, Vec<&Outcome>)], tier: &str) -> Verdict {
    let statuses: Vec<Status> =
        groups.iter().filter(|(_, id, _)| tier_of(id) == tier).map(|(_, _, o)| check_status(o)).collect();
    if statuses.contains(&Status::Fail) {
        Verdict::Fail
    } else if statuses.contains(&Status::Skip) {
        Verdict::Incomplete
    } else {
        Verdict::Pass
    }
}

pub fn summary_json(evidence: &Evidence<'_>) -> serde_json::Value {
    let (run, skipped) = (evidence.run, evidence.skipped);
    let groups = grouped(evidence);
    let counts = counts(evidence);
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
                    "found": o.found, "status": o.status, "field": o.field, "source": o.source,
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
    let live = evidence.live.map(|l| {
        json!({
            "status": tier_verdict(&groups, "live"),
            "notes": l.notes,
            "cleanup_not_finished": l.cleanup,
            "timings_s": l.timings.iter().map(|(phase, secs)| json!({"phase": phase, "seconds": secs})).collect::<Vec<_>>(),
        })
    });
    json!({
        "status": counts.verdict(),
        "counts": {
            "passed": counts.passed, "failed": counts.failed,
            "not_verified": counts.not_verified, "skipped_by_request": counts.excluded,
        },
        "tiers": {
            "static": { "status": tier_verdict(&groups, "static"), "elapsed_ms": run.elapsed.as_secs_f64() * 1000.0 },
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
            Status::Skip | Status::Excluded => {
                // The reason: the first fact not established (or the request).
                let reason = outcomes.iter().find(|o| o.status != Status::Pass).map(|o| o.line()).unwrap_or_default();
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason);
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
    let c = counts(evidence);
    let mut md = String::from("# CBAM conformance\n\n");
    md.push_str(&format!(
        "**{}**: {} checks passed, {} failed, {} not verified, {} skipped by request (static tier {:.0} ms, kustomize {}).\n\n",
        c.verdict().headline(),
        c.passed,
        c.failed,
        c.not_verified,
        c.excluded,
        run.elapsed.as_secs_f64() * 1000.0,
        run.kustomize
    ));
    for (env, id, outcomes) in
        groups.iter().filter(|(_, _, o)| matches!(check_status(o), Status::Skip | Status::Excluded))
    {
        let label = if check_status(outcomes) == Status::Skip { "not verified" } else { "skipped by request" };
        let why = outcomes.iter().find(|o| o.status != Status::Pass).map_or("", |o| o.found.as_str());
        md.push_str(&format!("> **{id} [{env}] {label}**: {why}\n\n"));
    }
    if let Some(live) = evidence.live {
        for problem in &live.cleanup {
            md.push_str(&format!(
                "> **cleanup not finished**: {problem} (the next run or `--cleanup-only` retries)\n\n"
            ));
        }
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
        md.push_str(&format!("> **{} tier not verified**: {}\n\n", skip.tier, skip.reason));
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
        // The digest in summary.json is of the real rendering; the copy has no secret values.
        write_atomic(
            &dir.join("rendered").join(format!("{}.yaml", result.env)),
            &cbam_model::redact::secrets(&result.rendered),
        )?;
    }
    write_atomic(&dir.join("junit.xml"), &junit(evidence)?)?;
    write_atomic(&dir.join("summary.md"), &markdown(evidence))?;
    write_atomic(&dir.join("results.sarif"), &format!("{:#}\n", crate::sarif::log(evidence)))?;
    // Last: summary.json is what a gate reads, so it appears only when the rest is there.
    Ok(write_atomic(&dir.join("summary.json"), &format!("{:#}\n", summary_json(evidence)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbam_model::environment::Env;

    fn fact(status: Status) -> Outcome {
        Outcome {
            env: Env::new("production").expect("a valid name"),
            check: "live-rate-limit",
            object: "Ingress gl-cbam/cbam-api".into(),
            subject: "first 429".into(),
            expected: "request 101".into(),
            found: "x".into(),
            status,
            field: None,
            source: None,
        }
    }

    fn status_of(statuses: &[Status]) -> Status {
        let facts: Vec<Outcome> = statuses.iter().map(|s| fact(*s)).collect();
        check_status(&facts.iter().collect::<Vec<_>>())
    }

    #[test]
    fn a_check_with_any_unverified_fact_is_not_a_pass() {
        assert_eq!(status_of(&[Status::Pass, Status::Pass]), Status::Pass);
        assert_eq!(status_of(&[Status::Pass, Status::Skip]), Status::Skip);
        assert_eq!(status_of(&[Status::Skip, Status::Fail]), Status::Fail);
        assert_eq!(status_of(&[Status::Excluded]), Status::Excluded);
    }

    #[test]
    fn the_verdict_never_overstates() {
        let pass = Counts { passed: 60, ..Counts::default() };
        assert_eq!(pass.verdict(), Verdict::Pass);
        // Skipped by request is not something asked for.
        assert_eq!(Counts { excluded: 1, ..pass }.verdict(), Verdict::Pass);
        assert_eq!(Counts { not_verified: 1, ..pass }.verdict(), Verdict::Incomplete);
        assert_eq!(Counts { not_verified: 1, failed: 1, ..pass }.verdict(), Verdict::Fail);
        assert_eq!(
            [Verdict::Pass, Verdict::Fail, Verdict::Incomplete].map(Verdict::exit_code),
            [0, 1, 3],
            "the README's exit-code table"
        );
    }
}
