//! How the environments may differ: every field of every rendered object is
//! the same in all environments except those fixtures/env-contract.yaml
//! lists (replicas, image, resources, host, issuer, the application
//! settings). A security context relaxed only in dev, or a probe changed only
//! in staging, fails here even when no fixture row names that field.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::context::Context;
use cbam_model::environment::Env;
use cbam_model::manifest::Object;
use cbam_model::outcome::Recorder;

/// Every leaf of a rendered object by its dotted path; a list item is
/// `[NAME]` when it has a `name`, else `[INDEX]`. Empty maps and lists are
/// leaves too (`{}`, `[]`), so a field's presence is compared.
fn flatten(value: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                flatten(item, &join(key), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                let name = item.get("name").and_then(Value::as_str).map_or_else(|| index.to_string(), str::to_owned);
                flatten(item, &format!("{path}[{name}]"), out);
            }
        }
        Value::String(text) => {
            out.insert(path.to_owned(), text.clone());
        }
        other => {
            out.insert(path.to_owned(), other.to_string());
        }
    }
}

/// `pattern` allows `path`: the same segments, `[*]` standing for any list
/// item, and a pattern that ends at a segment boundary allowing all below.
fn allows(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.as_bytes(), path.as_bytes());
    loop {
        match (p.first(), q.first()) {
            (None, None) => return true,
            (None, Some(b'.' | b'[')) => return true,
            (Some(b'['), Some(b'[')) if p.starts_with(b"[*]") => {
                let Some(end) = q.iter().position(|&c| c == b']') else { return false };
                p = &p[3..];
                q = &q[end + 1..];
            }
            (Some(a), Some(b)) if a == b => {
                p = &p[1..];
                q = &q[1..];
            }
            _ => return false,
        }
    }
}

/// Which object of another environment is "the same": kind and name (the
/// Namespace is each environment's own, so by kind).
fn same_object(a: &Object, b: &Object) -> bool {
    a.kind() == b.kind() && (a.kind() == "Namespace" || a.name() == b.name())
}

/// The part of a path a source line is looked up by: after the last list
/// item (`livenessProbe.periodSeconds`), as files index lists by position.
fn field_of(path: &str) -> &str {
    path.rsplit(']').next().map(|rest| rest.trim_start_matches('.')).filter(|f| !f.is_empty()).unwrap_or(path)
}

pub(crate) fn env_contract(cx: &Context, r: &mut Recorder) {
    let overlay = format!("overlay {}", cx.env);
    let mut others: Vec<(Env, &[Object])> = Vec::new();
    for (env, rendered) in cx.peers.iter().filter(|(env, _)| *env != cx.env) {
        match rendered {
            Ok(objects) => others.push((*env, objects)),
            Err(reason) => {
                r.skip(
                    &overlay,
                    &format!("compared with {env}"),
                    "its overlay rendered",
                    cbam_error_chain::render(&**reason),
                );
            }
        }
    }
    if others.is_empty() {
        return r.skip(&overlay, "other environments", "at least one to compare with", "no other environment rendered");
    }
    let names: Vec<String> = others.iter().map(|(env, _)| env.to_string()).collect();
    let allowed = |kind: &str, path: &str| {
        ["*", kind].iter().filter_map(|k| cx.env_contract.differ.get(*k)).flatten().any(|p| allows(p, path))
    };
    for object in cx.overlay {
        let mut mine = BTreeMap::new();
        flatten(&object.to_value(), "", &mut mine);
        let theirs: Vec<(Env, BTreeMap<String, String>)> = others
            .iter()
            .filter_map(|(env, objects)| objects.iter().find(|o| same_object(o, object)).map(|o| (*env, o)))
            .map(|(env, o)| {
                let mut flat = BTreeMap::new();
                flatten(&o.to_value(), "", &mut flat);
                (env, flat)
            })
            .collect();
        if theirs.is_empty() {
            continue; // only here: inventory says whether it belongs
        }
        let mut paths: Vec<&String> = mine.keys().chain(theirs.iter().flat_map(|(_, f)| f.keys())).collect();
        paths.sort();
        paths.dedup();
        let label = object.label();
        let mut differing = 0;
        for path in paths.into_iter().filter(|p| !allowed(object.kind(), p)) {
            let value = |flat: &BTreeMap<String, String>| flat.get(path).cloned().unwrap_or_else(|| "absent".into());
            let own = value(&mine);
            let values: Vec<String> = theirs.iter().map(|(_, f)| value(f)).collect();
            if values.iter().all(|v| *v == own) {
                continue;
            }
            // The environment whose value is the one most common value is not
            // the one that deviates: the others' runs name them. A tie fails
            // every side.
            let all: Vec<&String> = values.iter().chain([&own]).collect();
            let count = |v: &String| all.iter().filter(|x| **x == v).count();
            let best = all.iter().map(|v| count(v)).max().unwrap_or(0);
            let mut modes: Vec<&String> = all.iter().copied().filter(|v| count(v) == best).collect();
            modes.dedup();
            modes.sort();
            modes.dedup();
            if modes == [&own] {
                continue;
            }
            differing += 1;
            let expected =
                theirs.iter().zip(&values).map(|((env, _), v)| format!("{env}: {v}")).collect::<Vec<_>>().join(", ");
            r.at(field_of(path)).record(&label, path, format!("as in {expected}"), own, false);
        }
        if differing == 0 {
            let same_as = format!("the same as {}", names.join(", "));
            r.record(&label, "fields the contract does not let differ", same_as.clone(), same_as, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_allow_their_field_and_everything_under_it() {
        assert!(allows("spec.replicas", "spec.replicas"));
        assert!(allows(
            "spec.template.spec.containers[*].resources",
            "spec.template.spec.containers[api].resources.limits.cpu"
        ));
        assert!(allows(
            "metadata.labels.app.kubernetes.io/environment",
            "metadata.labels.app.kubernetes.io/environment"
        ));
        assert!(!allows("spec.replicas", "spec.replicasX"));
        assert!(!allows(
            "spec.template.spec.containers[*].image",
            "spec.template.spec.containers[api].imagePullPolicy"
        ));
        assert!(!allows("data.LOG_LEVEL", "data.LOG"));
    }

    #[test]
    fn lists_are_keyed_by_name() {
        let mut flat = BTreeMap::new();
        let value = serde_json::json!({"spec": {"containers": [{"name": "api", "ports": [8000]}], "volumes": []}});
        flatten(&value, "", &mut flat);
        assert_eq!(flat.get("spec.containers[api].name").map(String::as_str), Some("api"));
        assert_eq!(flat.get("spec.containers[api].ports[0]").map(String::as_str), Some("8000"));
        assert_eq!(flat.get("spec.volumes").map(String::as_str), Some("[]"));
        assert_eq!(field_of("spec.containers[api].livenessProbe.periodSeconds"), "livenessProbe.periodSeconds");
        assert_eq!(field_of("metadata.labels.x"), "metadata.labels.x");
    }
}
