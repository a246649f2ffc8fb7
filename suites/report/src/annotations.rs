//! GitHub workflow annotations (`::error file=…,line=…,title=…::…`) for the
//! pull-request view: failing facts as errors, facts not verified as
//! warnings, each at its source line where it has one. GitHub shows at most
//! 10 of each kind per step, so at most 10 are written, failures first, and
//! the rest are counted in one notice that points at the full report.

use cbam_model::outcome::{Outcome, Status};

/// GitHub shows no more per step.
pub const LIMIT: usize = 10;

/// A workflow command's message: `%`, CR and LF escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,`.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

fn annotation(outcome: &Outcome) -> String {
    let command = if outcome.status == Status::Fail { "error" } else { "warning" };
    let mut properties = Vec::new();
    if let Some(source) = &outcome.source {
        properties.push(format!("file={}", property(&source.file)));
        properties.push(format!("line={}", source.line.max(1)));
    }
    let verdict = if outcome.status == Status::Fail { "" } else { " not verified" };
    properties.push(format!("title={}", property(&format!("{} [{}]{verdict}", outcome.check, outcome.env))));
    let message =
        format!("{} {}: expected {}, found {}", outcome.object, outcome.subject, outcome.expected, outcome.found);
    format!("::{command} {}::{}", properties.join(","), data(&message))
}

/// The annotation lines for these facts (failures, then not verified), at
/// most `LIMIT`, plus a notice for the rest; `report` names where all are.
pub fn lines<'a>(outcomes: impl Iterator<Item = &'a Outcome>, report: &str) -> Vec<String> {
    let mut chosen: Vec<&Outcome> = Vec::new();
    let mut skipped: Vec<&Outcome> = Vec::new();
    for outcome in outcomes {
        match outcome.status {
            Status::Fail => chosen.push(outcome),
            Status::Skip => skipped.push(outcome),
            Status::Pass | Status::Excluded => {}
        }
    }
    chosen.extend(skipped);
    let rest = chosen.len().saturating_sub(LIMIT);
    let mut out: Vec<String> = chosen.iter().take(LIMIT).map(|o| annotation(o)).collect();
    if rest > 0 {
        out.push(format!("::notice title=cbam-conformance::{}", data(&format!(
            "{rest} more findings not annotated (GitHub shows {LIMIT} per step): every one is in {report} (summary.md, results.sarif)"
        ))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbam_model::environment::Env;
    use cbam_model::source::Source;

    fn fact(status: Status, line: usize) -> Outcome {
        Outcome {
            env: Env::new("dev").expect("a valid name"),
            check: "resources",
            object: "Deployment gl-cbam-dev/cbam-api".into(),
            subject: "limits.cpu".into(),
            expected: "2".into(),
            found: "3, 100%".into(),
            status,
            field: None,
            source: Some(Source { file: "infra/a,b.yaml".into(), line, note: None }),
        }
    }

    #[test]
    fn an_error_is_escaped_and_placed() {
        let lines = lines([fact(Status::Fail, 9)].iter(), "r");
        assert_eq!(
            lines,
            [
                "::error file=infra/a%2Cb.yaml,line=9,title=resources [dev]::Deployment gl-cbam-dev/cbam-api limits.cpu: expected 2, found 3, 100%25"
            ]
        );
    }

    #[test]
    fn at_most_ten_failures_first_and_one_notice_for_the_rest() {
        let facts: Vec<Outcome> = (1..=8)
            .map(|l| fact(Status::Skip, l))
            .chain((1..=8).map(|l| fact(Status::Fail, l)))
            .chain([fact(Status::Pass, 1)])
            .collect();
        let lines = lines(facts.iter(), "target/conformance/dev");
        assert_eq!(lines.len(), LIMIT + 1);
        assert!(lines[..8].iter().all(|l| l.starts_with("::error ")), "{lines:?}");
        assert!(lines[8..10].iter().all(|l| l.starts_with("::warning ")), "{lines:?}");
        assert!(lines[10].starts_with("::notice ") && lines[10].contains("6 more findings"), "{lines:?}");
    }
}
