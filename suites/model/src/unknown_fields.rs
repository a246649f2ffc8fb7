//! Strict decoding: k8s-openapi ignores fields it does not know, the API
//! server (with strict field validation) does not. A field that survives
//! parsing but vanishes on re-serialisation was unknown to the typed model.

use serde_json::Value;

/// Paths (like `spec.template.spec.containers[0].livenessprobe`) present in
/// `original` but absent from `round_trip`.
pub(crate) fn unknown_fields(original: &Value, round_trip: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(original, round_trip, String::new(), &mut found);
    found
}

fn walk(original: &Value, round_trip: &Value, path: String, found: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(left), Value::Object(right)) => {
            for (key, value) in left {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match right.get(key) {
                    Some(other) => walk(value, other, child, found),
                    None => found.push(child),
                }
            }
        }
        (Value::Array(left), Value::Array(right)) => {
            for (index, (value, other)) in left.iter().zip(right).enumerate() {
                walk(value, other, format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_nested_unknown_keys_with_their_path() {
        let original = json!({"spec": {"containers": [{"name": "a", "livenessprobe": {}}]}, "x": null});
        let round_trip = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(unknown_fields(&original, &round_trip), ["spec.containers[0].livenessprobe"]);
    }

    #[test]
    fn identical_documents_have_none() {
        let doc = json!({"a": [1, {"b": "c"}], "d": {}});
        assert!(unknown_fields(&doc, &doc).is_empty());
    }
}
