//! What a check found: one outcome per fact compared.

use std::fmt::Display;

use serde::Serialize;

use crate::environment::Env;
use crate::source::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not verified: asked for, but not established (never a pass).
    Skip,
    /// Not asked for (`--skip-check`): skipped by request.
    Excluded,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub env: Env,
    pub check: &'static str,
    pub object: String,
    /// Which fact of the object (`limits.cpu`, `rule host`, ...).
    pub subject: String,
    pub expected: String,
    pub found: String,
    pub status: Status,
    /// The object's field the fact is about, where the subject does not
    /// name it (`spec.tls`, `volumeMounts`): where its source is looked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Where in the checked infra tree the value comes from (static facts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

impl Outcome {
    /// One line naming the check, the object, the expected and found value.
    pub fn line(&self) -> String {
        let tag = match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "NOT VERIFIED",
            Status::Excluded => "SKIPPED BY REQUEST",
        };
        let at = self.source.as_ref().map(|s| format!(" at {s}")).unwrap_or_default();
        format!(
            "{tag} [{}] {}: {} {}: expected {}, found {}{at}",
            self.env, self.check, self.object, self.subject, self.expected, self.found
        )
    }
}

/// Collects the outcomes of one check on one environment.
#[derive(Debug)]
pub struct Recorder {
    env: Env,
    check: &'static str,
    pub outcomes: Vec<Outcome>,
    /// Markdown the check adds to the report (the autoscaling step tables).
    pub sections: Vec<String>,
    /// The field the next fact is about (`at`).
    field: Option<String>,
}

impl Recorder {
    pub fn new(env: Env, check: &'static str) -> Self {
        Recorder { env, check, outcomes: Vec::new(), sections: Vec::new(), field: None }
    }

    /// Names the object's field the next fact is about, where its subject
    /// does not (`r.at("spec.selector").record(...)`).
    pub fn at(&mut self, field: impl Into<String>) -> &mut Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a Markdown section to the report.
    pub fn section(&mut self, markdown: String) {
        self.sections.push(markdown);
    }

    fn push(&mut self, object: &str, subject: &str, expected: String, found: String, status: Status) {
        let (env, check) = (self.env, self.check);
        self.outcomes.push(Outcome {
            env,
            check,
            object: object.to_owned(),
            subject: subject.to_owned(),
            expected,
            found,
            status,
            field: self.field.take(),
            source: None,
        });
    }

    /// Records a fact; it passes when `passed` is true.
    pub fn record(&mut self, object: &str, subject: &str, expected: impl Display, found: impl Display, passed: bool) {
        let status = if passed { Status::Pass } else { Status::Fail };
        self.push(object, subject, expected.to_string(), found.to_string(), status);
    }

    /// Records a fact that passes when expected and found are equal.
    pub fn equal<T: Display + PartialEq>(&mut self, object: &str, subject: &str, expected: T, found: T) {
        let passed = expected == found;
        self.record(object, subject, expected, found, passed);
    }

    /// Records a fact that could not be established here, and why (never a pass).
    pub fn skip(&mut self, object: &str, subject: &str, expected: impl Display, reason: impl Display) {
        self.push(object, subject, expected.to_string(), format!("not verified: {reason}"), Status::Skip);
    }

    /// Records a check the invocation did not ask for (`--skip-check`).
    pub fn exclude(&mut self, object: &str, reason: impl Display) {
        self.push(
            object,
            "selection",
            "not asked for".into(),
            format!("skipped by request: {reason}"),
            Status::Excluded,
        );
    }

    /// Records an object the check needs but the manifests lack.
    pub fn missing(&mut self, object: &str, subject: &str) {
        self.record(object, subject, "present", "absent", false);
    }
}

/// Shows an optional value the way failures read: `absent` when unset.
pub fn shown<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "absent".to_owned(), |v| v.to_string())
}
