//! The run as SARIF 2.1.0 (what code-scanning views read): one rule per
//! check id with its description from the check tables, one result per
//! failing fact (kind `fail`, level `error`) and per fact not verified
//! (kind `open`: the tool could not establish it; never a pass), located at
//! the file and line of the checked infra tree where the static tier found
//! the value. Live facts have no line: they carry the object as a logical
//! location.

use std::path::Path;

use serde_json::{Value, json};

use crate::evidence::Evidence;
use cbam_model::outcome::{Outcome, Status};
use cbam_model::source::Source;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn location(source: &Source) -> Value {
    // A relative path is relative to where the harness ran (the repository's
    // root by default); an absolute one is a file URI.
    let artifact = if Path::new(&source.file).is_absolute() {
        json!({ "uri": format!("file://{}", source.file) })
    } else {
        json!({ "uri": source.file, "uriBaseId": "%SRCROOT%" })
    };
    let mut physical = json!({ "artifactLocation": artifact, "region": { "startLine": source.line.max(1) } });
    if let Some(note) = source.note {
        physical["region"]["message"] = json!({ "text": note });
    }
    json!({ "physicalLocation": physical })
}

fn result(outcome: &Outcome, rule_index: usize) -> Value {
    let (kind, level) = match outcome.status {
        Status::Fail => ("fail", "error"),
        _ => ("open", "none"),
    };
    let text = format!(
        "[{}] {} {}: expected {}, found {}",
        outcome.env, outcome.object, outcome.subject, outcome.expected, outcome.found
    );
    let mut result = json!({
        "ruleId": outcome.check,
        "ruleIndex": rule_index,
        "kind": kind,
        "level": level,
        "message": { "text": text },
        "properties": { "environment": outcome.env },
    });
    match &outcome.source {
        Some(source) => result["locations"] = json!([location(source)]),
        None => {
            result["locations"] = json!([{ "logicalLocations": [{ "fullyQualifiedName": outcome.object }] }]);
        }
    }
    result
}

/// The SARIF log of a run.
pub fn log(evidence: &Evidence<'_>) -> Value {
    let rules = evidence.rules;
    let results: Vec<Value> = evidence
        .outcomes()
        .filter(|o| matches!(o.status, Status::Fail | Status::Skip))
        .map(|o| result(o, rules.iter().position(|rule| rule.id == o.check).unwrap_or(0)))
        .collect();
    let descriptors: Vec<Value> =
        rules.iter().map(|rule| json!({ "id": rule.id, "shortDescription": { "text": rule.about } })).collect();
    let invocation = json!({
        "executionSuccessful": true,
        "toolExecutionNotifications": evidence.skipped.iter().map(|s| json!({
            "level": "warning",
            "message": { "text": format!("{} tier not verified: {}", s.tier, s.reason) },
        })).collect::<Vec<_>>(),
    });
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "cbam-conformance",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": descriptors,
            }},
            "invocations": [invocation],
            "results": results,
        }],
    })
}
