//! No secret value in the evidence: a Secret's `data` and `stringData`
//! values in rendered manifests are replaced by a digest (keys kept), so a
//! Secret committed by mistake (the static check `secret-not-committed`)
//! is not copied in clear into a report that a release carries.

use sha2::{Digest, Sha256};

/// The value shown in place of a secret: enough to tell two values apart.
fn placeholder(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    format!("redacted:sha256:{}", &format!("{digest:x}")[..16])
}

/// `rendered` (multi-document YAML, as kustomize prints it) with every
/// Secret's values replaced; other documents are kept byte for byte.
pub fn secrets(rendered: &str) -> String {
    let documents: Vec<&str> = rendered.split("\n---\n").collect();
    let redacted: Vec<String> = documents.iter().map(|d| document(d)).collect();
    redacted.join("\n---\n")
}

fn document(text: &str) -> String {
    let Ok(mut value) = serde_norway::from_str::<serde_norway::Value>(text) else {
        // Not YAML we can read: keep nothing that might be a value.
        return if text.contains("kind: Secret") {
            "# a Secret that could not be parsed: redacted\n".into()
        } else {
            text.into()
        };
    };
    if value.get("kind").and_then(serde_norway::Value::as_str) != Some("Secret") {
        return text.to_owned();
    }
    for field in ["data", "stringData"] {
        if let Some(serde_norway::Value::Mapping(map)) = value.get_mut(field) {
            for (_, v) in map.iter_mut() {
                let shown = match &*v {
                    serde_norway::Value::String(s) => placeholder(s),
                    other => placeholder(&serde_norway::to_string(other).unwrap_or_default()),
                };
                *v = serde_norway::Value::String(shown);
            }
        }
    }
    let mut out = serde_norway::to_string(&value).unwrap_or_else(|_| "# a Secret: redacted\n".into());
    if !text.ends_with('\n') {
        out = out.trim_end_matches('\n').to_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_become_digests_and_everything_else_is_kept() {
        let rendered = "apiVersion: v1\nkind: ConfigMap\ndata:\n  A: visible\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  TOKEN: c2VudGluZWw=\nstringData:\n  PASSWORD: sentinel-value\n";
        let out = secrets(rendered);
        assert!(out.starts_with("apiVersion: v1\nkind: ConfigMap\ndata:\n  A: visible\n---\n"), "{out}");
        assert!(!out.contains("sentinel-value") && !out.contains("c2VudGluZWw="), "{out}");
        assert!(out.contains("TOKEN: redacted:sha256:") && out.contains("PASSWORD: redacted:sha256:"), "{out}");
    }

    #[test]
    fn an_unreadable_secret_is_dropped_whole() {
        let out = secrets("kind: Secret\ndata: [unclosed\n  PASSWORD: sentinel");
        assert!(!out.contains("sentinel"), "{out}");
    }
}
