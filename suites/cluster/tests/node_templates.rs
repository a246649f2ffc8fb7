//! Every template the kit fills by text substitution (`__NAME__` replaced
//! by sed in ci/kit/build.sh and cbam-node) keeps each placeholder inside
//! a string, so no value put there can change type (issue 28). Checked by
//! putting a number-looking value in every placeholder and parsing.

use std::path::{Path, PathBuf};

use serde_norway::Value;

const HOSTILE: &str = "1e3";

fn ci() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ci")
}

/// TEXT with every `__NAME__` placeholder replaced by HOSTILE, and how many
/// there were.
fn filled(text: &str) -> (String, usize) {
    let mut out = String::new();
    let mut count = 0;
    let mut rest = text;
    while let Some(start) = rest.find("__") {
        let after = &rest[start + 2..];
        let name_len =
            after.find("__").filter(|&n| n > 0 && after[..n].bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        match name_len {
            Some(n) => {
                out.push_str(&rest[..start]);
                out.push_str(HOSTILE);
                count += 1;
                rest = &after[n + 2..];
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, count)
}

/// How many times HOSTILE appears inside strings of VALUE (keys included).
fn in_strings(value: &Value) -> usize {
    match value {
        Value::String(s) => s.matches(HOSTILE).count(),
        Value::Sequence(items) => items.iter().map(in_strings).sum(),
        Value::Mapping(map) => map.iter().map(|(k, v)| in_strings(k) + in_strings(v)).sum(),
        Value::Tagged(tagged) => in_strings(&tagged.value),
        _ => 0,
    }
}

/// Placeholders in FILE, and how many of them landed in strings.
fn check(file: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("failed to read {}: {e}", file.display()));
    // Comments are no data: what sed puts there reaches no parser.
    let data: String = text.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect();
    let (text, placeholders) = filled(&data);
    let mut found = 0;
    for document in serde_norway::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .unwrap_or_else(|e| panic!("{} does not parse once filled: {e}", file.display()));
        found += in_strings(&value);
    }
    (placeholders, found)
}

#[test]
fn every_placeholder_sits_inside_a_string() {
    let mut files: Vec<PathBuf> = vec![ci().join("kit/node/kubelet.yaml"), ci().join("kit/node/cni.conflist")];
    for dir in [ci().join("kit/node/addons"), ci().join("addons")] {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("failed to list {}: {e}", dir.display())) {
            files.push(entry.expect("a directory entry").path());
        }
    }
    let mut total = 0;
    for file in &files {
        let (placeholders, in_strings) = check(file);
        assert_eq!(in_strings, placeholders, "{}: a placeholder outside a string", file.display());
        total += placeholders;
    }
    assert!(total >= 9, "{total} placeholders in {} files: the templates moved?", files.len());
}

/// containerd's TOML: each placeholder within a double-quoted string on its
/// line (no TOML parser here; the file is small and flat).
#[test]
fn containerd_placeholders_are_quoted() {
    let text = std::fs::read_to_string(ci().join("kit/node/containerd.toml")).expect("containerd.toml");
    let mut seen = 0;
    for line in text.lines().filter(|l| l.contains("__")) {
        let (before, _) = line.split_once("__").expect("a placeholder");
        assert_eq!(before.matches('"').count() % 2, 1, "unquoted placeholder: {line}");
        seen += 1;
    }
    assert!(seen >= 1);
}

/// The check can fail: an unquoted placeholder is caught.
#[test]
fn an_unquoted_placeholder_is_caught() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("t.yaml");
    std::fs::write(&file, "clusterDNS: [__DNS__]\nimage: x:__V__\n").expect("write");
    assert_eq!(check(&file), (2, 1));
}
