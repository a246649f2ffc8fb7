//! Where each fact's value comes from in the checked infra tree: the base
//! resource, an overlay's patch (a file or inline in its kustomization), a
//! kustomization's `images`/`namespace`, a governance file, the summary.
//!
//! kustomize itself says which file each rendered object came from (its
//! `config.kubernetes.io/origin` build metadata, asked for through a wrapper
//! kustomization outside the user's tree); the patches that apply to it are
//! read from the kustomizations (kustomize's transformer annotations name
//! only the kustomization, not the patch). Every file is read with a YAML
//! parser that keeps positions. A fact is then placed at the last
//! contributor that sets its field (or, failing that, its value); where no
//! line sets it (a default, a missing field), at the object's start, and
//! the source says so.

use std::collections::BTreeMap;

use std::path::{Component, Path, PathBuf};

use marked_yaml::{LoaderOptions, Node, parse_yaml_with_options};

use serde_json::Value;

use cbam_model::outcome::Outcome;
use cbam_model::source::{SUMMARY_FILE, Source};

/// Where no line sets the value.
const AT_START: &str = "no line sets this value; the object's start";
/// A fact about the overlay as a whole.
const OVERLAY: &str = "the overlay as a whole; its kustomization";
/// Where an object is not rendered at all.
const NOT_RENDERED: &str = "the object is not in the overlay's output; its kustomization";

/// One field a contributor sets: its dotted path (`spec.template.spec
/// .containers[0].resources.limits.cpu`), its scalar value, its line.
#[derive(Debug, Clone)]
struct Entry {
    path: String,
    value: Option<String>,
    line: usize,
}

/// One document or patch that shaped an object.
#[derive(Debug, Clone)]
struct Contributor {
    file: String,
    start: usize,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Sources {
    kind: String,
    name: String,
    /// In application order: the origin first.
    contributors: Vec<Contributor>,
}

/// The sources of every object of one environment (overlay and governance).
#[derive(Debug, Default)]
pub struct SourceMap {
    objects: Vec<Sources>,
    /// The summary's lines, for the docs-drift facts.
    summary: Vec<String>,
    /// The overlay's kustomization: where an object that is not rendered
    /// would come from.
    kustomization: Option<String>,
}

/// One YAML document of a file, positioned.
#[derive(Debug)]
struct Document {
    root: Node,
    start: usize,
}

/// Splits a multi-document file at `---` lines and parses each part with
/// positions (line numbers are the file's). Parts that hold only comments
/// are skipped; a part that does not parse is skipped too (kustomize, which
/// ran first, has already said whether the file is valid).
fn documents(text: &str, first_line: usize) -> Vec<Document> {
    let mut parts: Vec<(usize, String)> = vec![(first_line, String::new())];
    for (index, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            parts.push((first_line + index + 1, String::new()));
            continue;
        }
        if let Some((_, part)) = parts.last_mut() {
            part.push_str(line);
            part.push('\n');
        }
    }
    parts
        .into_iter()
        .filter_map(|(start, part)| {
            // Blank lines keep the parser's line numbers the file's.
            let padded = format!("{}{part}", "\n".repeat(start - 1));
            [LoaderOptions::default(), LoaderOptions::default().toplevel_sequence()]
                .into_iter()
                .find_map(|options| parse_yaml_with_options(0, &padded, options).ok())
                .filter(|root| !is_empty(root))
                .map(|root| Document { start: first_content_line(&part).map_or(start, |l| start + l), root })
        })
        .collect()
}

fn is_empty(node: &Node) -> bool {
    match node {
        Node::Mapping(m) => m.is_empty(),
        Node::Sequence(s) => s.is_empty(),
        Node::Scalar(s) => s.as_str().is_empty(),
    }
}

/// The 0-based index of the first line that is neither blank nor a comment.
fn first_content_line(part: &str) -> Option<usize> {
    part.lines().position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
}

fn line_of(node: &Node) -> usize {
    node.span().start().map_or(0, |m| m.line())
}

/// Every field under `node`, with `prefix` as its path.
fn entries(node: &Node, prefix: &str, line: usize, out: &mut Vec<Entry>) {
    match node {
        Node::Scalar(s) => out.push(Entry { path: prefix.to_owned(), value: Some(s.as_str().to_owned()), line }),
        Node::Mapping(map) => {
            if !prefix.is_empty() {
                out.push(Entry { path: prefix.to_owned(), value: None, line });
            }
            for (key, value) in map.iter() {
                let path =
                    if prefix.is_empty() { key.as_str().to_owned() } else { format!("{prefix}.{}", key.as_str()) };
                let line = key.span().start().map_or(line, |m| m.line());
                entries(value, &path, line, out);
            }
        }
        Node::Sequence(seq) => {
            out.push(Entry { path: prefix.to_owned(), value: None, line });
            for (index, item) in seq.iter().enumerate() {
                entries(item, &format!("{prefix}[{index}]"), line_of(item).max(line), out);
            }
        }
    }
}

/// The fields a JSON 6902 patch sets: each operation's path, dotted, at its
/// `path:` line (a `remove` sets its path to nothing, which is a fact too).
fn json6902_entries(ops: &Node) -> Vec<Entry> {
    let mut out = Vec::new();
    for op in ops.as_sequence().map(|s| s.iter()).into_iter().flatten() {
        let Some(map) = op.as_mapping() else { continue };
        let Some(path) = map.get_scalar("path") else { continue };
        let dotted = path.as_str().trim_start_matches('/').replace('/', ".").replace("~1", "/").replace("~0", "~");
        let line = path.span().start().map_or(0, |m| m.line());
        match map.get_node("value") {
            Some(value) => entries(value, &dotted, line, &mut out),
            None => out.push(Entry { path: dotted, value: None, line }),
        }
    }
    out
}

fn kind_and_name(root: &Node) -> Option<(String, String)> {
    let map = root.as_mapping()?;
    let kind = map.get_scalar("kind")?.as_str().to_owned();
    let name = map.get_mapping("metadata").and_then(|m| m.get_scalar("name")).map(|n| n.as_str().to_owned());
    Some((kind, name.unwrap_or_default()))
}

fn contributor(file: &str, doc: &Document) -> Contributor {
    let mut list = Vec::new();
    match &doc.root {
        Node::Sequence(_) => list = json6902_entries(&doc.root),
        root => entries(root, "", doc.start, &mut list),
    }
    Contributor { file: file.to_owned(), start: doc.start, entries: list }
}

/// `a/b/../c` -> `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A path inside `infra`, `/`-separated, or None when it lies outside.
fn relative(infra: &Path, path: &Path) -> Option<String> {
    let path = normalize(path);
    let rest = path.strip_prefix(normalize(infra)).ok()?;
    Some(rest.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
}

/// A patch of a kustomization and the objects it targets.
#[derive(Debug)]
struct Patch {
    target: Option<(Option<String>, Option<String>)>,
    contributors: Vec<(Option<(String, String)>, Contributor)>,
}

/// What a kustomization (and those it builds on, first) adds to objects.
#[derive(Debug, Default)]
struct Layers {
    patches: Vec<Patch>,
    /// `images` and `namespace` entries: apply to every object of a kind
    /// that has them.
    images: Vec<Contributor>,
    namespace: Option<Contributor>,
}

fn read_layers(infra: &Path, dir: &Path, layers: &mut Layers, depth: usize) {
    let file = dir.join("kustomization.yaml");
    let (Ok(text), Some(name)) = (std::fs::read_to_string(&file), relative(infra, &file)) else { return };
    let Some(doc) = documents(&text, 1).into_iter().next() else { return };
    let Some(map) = doc.root.as_mapping() else { return };
    if depth < 8 {
        for resource in map.get_sequence("resources").map(|s| s.iter()).into_iter().flatten() {
            let Some(path) = resource.as_scalar() else { continue };
            let child = normalize(&dir.join(path.as_str()));
            if child.is_dir() {
                read_layers(infra, &child, layers, depth + 1);
            }
        }
    }
    for patch in map.get_sequence("patches").map(|s| s.iter()).into_iter().flatten() {
        let Some(patch) = patch.as_mapping() else { continue };
        let target = patch.get_mapping("target").map(|t| {
            (t.get_scalar("kind").map(|k| k.as_str().to_owned()), t.get_scalar("name").map(|n| n.as_str().to_owned()))
        });
        let mut contributors = Vec::new();
        if let Some(path) = patch.get_scalar("path") {
            let file = normalize(&dir.join(path.as_str()));
            if let (Ok(text), Some(rel)) = (std::fs::read_to_string(&file), relative(infra, &file)) {
                for doc in documents(&text, 1) {
                    contributors.push((kind_and_name(&doc.root), contributor(&rel, &doc)));
                }
            }
        } else if let Some(inline) = patch.get_scalar("patch") {
            // The scalar's span starts at its first content line.
            let first = inline.span().start().map_or(1, |m| m.line());
            let body: String = inline.as_str().to_owned();
            for doc in documents(&body, first) {
                contributors.push((kind_and_name(&doc.root), contributor(&name, &doc)));
            }
        }
        layers.patches.push(Patch { target, contributors });
    }
    for image in map.get_sequence("images").map(|s| s.iter()).into_iter().flatten() {
        let Some(image) = image.as_mapping() else { continue };
        let at = image.get_scalar("newTag").or_else(|| image.get_scalar("newName"));
        if let Some(at) = at {
            let line = at.span().start().map_or(0, |m| m.line());
            let entry = Entry { path: "image".into(), value: None, line };
            layers.images.push(Contributor { file: name.clone(), start: line, entries: vec![entry] });
        }
    }
    if let Some(ns) = map.get_scalar("namespace") {
        let line = ns.span().start().map_or(0, |m| m.line());
        let entry = Entry { path: "metadata.namespace".into(), value: Some(ns.as_str().to_owned()), line };
        layers.namespace = Some(Contributor { file: name.clone(), start: line, entries: vec![entry] });
    }
}

/// The origin annotation kustomize adds when asked for build metadata.
pub const ORIGIN: &str = "config.kubernetes.io/origin";

/// Takes kustomize's origin annotation out of each rendered object (and an
/// `annotations` it leaves empty): each object's kind, name and origin file
/// (relative to the wrapper kustomization `wrapper`), the objects then as a
/// plain build renders them.
pub(crate) fn take_origins(
    values: &mut [(usize, Value)],
    wrapper: &Path,
    infra: &Path,
) -> Vec<(String, String, String)> {
    let mut origins = Vec::new();
    for (_, v) in values.iter_mut() {
        let kind = v.get("kind").and_then(Value::as_str).map(str::to_owned);
        let name = v.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned);
        let Some(annotations) = v.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) else {
            continue;
        };
        let origin = annotations.remove(ORIGIN);
        if annotations.is_empty()
            && let Some(metadata) = v.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.remove("annotations");
        }
        let path = origin
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|o| o.lines().find_map(|l| l.trim().strip_prefix("path: ")).map(|p| p.trim().to_owned()));
        if let (Some(kind), Some(name), Some(path)) = (kind, name, path)
            && let Some(file) = relative(infra, &wrapper.join(path))
        {
            origins.push((kind, name, file));
        }
    }
    origins
}

impl SourceMap {
    /// The sources of an overlay's objects (`origins` from kustomize), the
    /// governance files' objects, and the summary.
    pub(crate) fn build(
        infra: &Path,
        overlay: &Path,
        origins: &[(String, String, String)],
        governance_files: &[String],
        summary: &str,
    ) -> SourceMap {
        let mut layers = Layers::default();
        read_layers(infra, overlay, &mut layers, 0);
        let mut files: BTreeMap<String, Vec<Document>> = BTreeMap::new();
        let mut objects = Vec::new();
        for (kind, name, file) in origins {
            let docs = files.entry(file.clone()).or_insert_with(|| {
                std::fs::read_to_string(infra.join(file)).map(|t| documents(&t, 1)).unwrap_or_default()
            });
            let Some(doc) = docs.iter().find(|d| kind_and_name(&d.root).is_some_and(|(k, n)| &k == kind && &n == name))
            else {
                continue;
            };
            let mut contributors = vec![contributor(file, doc)];
            for patch in &layers.patches {
                for (own, c) in &patch.contributors {
                    let applies = match &patch.target {
                        Some((k, n)) => k.as_ref().is_none_or(|k| k == kind) && n.as_ref().is_none_or(|n| n == name),
                        None => own.as_ref().is_some_and(|(k, n)| k == kind && n == name),
                    };
                    if applies {
                        contributors.push(c.clone());
                    }
                }
            }
            if kind == "Deployment" {
                contributors.extend(layers.images.iter().cloned());
            }
            if kind != "Namespace" {
                contributors.extend(layers.namespace.iter().cloned());
            }
            objects.push(Sources { kind: kind.clone(), name: name.clone(), contributors });
        }
        for file in governance_files {
            let Ok(text) = std::fs::read_to_string(infra.join(file)) else { continue };
            for doc in documents(&text, 1) {
                if let Some((kind, name)) = kind_and_name(&doc.root) {
                    objects.push(Sources { kind, name, contributors: vec![contributor(file, &doc)] });
                }
            }
        }
        let kustomization = relative(infra, &overlay.join("kustomization.yaml"));
        SourceMap { objects, summary: summary.lines().map(str::to_owned).collect(), kustomization }
    }

    /// Where a fact's value comes from: the latest contributor (patches
    /// after the base) that sets its field to the value found; else, within
    /// the field, the value that differs from the expected one; else the
    /// field itself; else any field holding the value found; else the
    /// object's start, saying so.
    pub(crate) fn locate(&self, fact: &Outcome) -> Option<Source> {
        if let Some(table) = fact.object.strip_prefix(SUMMARY_FILE) {
            return self.in_summary(table, &fact.subject);
        }
        if fact.object.starts_with("overlay ") {
            // The overlay as a whole (its resource count, its Secrets).
            return Some(Source { file: self.kustomization.clone()?, line: 1, note: Some(OVERLAY) });
        }
        let mut words = fact.object.split_whitespace();
        let kind = words.next()?;
        // "Namespace" alone: the overlay's one object of that kind.
        let name = words.next().map(|n| n.rsplit('/').next().unwrap_or(n));
        let found_object = self.objects.iter().find(|o| o.kind == kind && name.is_none_or(|n| o.name == n));
        let Some(sources) = found_object else {
            let file = self.kustomization.clone()?;
            return Some(Source { file, line: 1, note: Some(NOT_RENDERED) });
        };
        // The field: named by the check, else the subject (before any
        // explanation in parentheses), else the subject's first word
        // (`requests.cpu >= ...`).
        let subject = fact.subject.split(" (").next().unwrap_or(&fact.subject).trim();
        let keys: Vec<&str> = match fact.field.as_deref() {
            Some(field) => vec![field],
            None => vec![subject, subject.split_whitespace().next().unwrap_or(subject)],
        };
        let found = fact.found.trim_matches('"');
        let meaningful =
            !matches!(found, "" | "absent" | "present" | "none" | "found") && !found.starts_with("not verified");
        let expected: Vec<&str> = tokens(&fact.expected).collect();
        let odd: Vec<&str> =
            tokens(&fact.found).chain(tokens(&fact.subject)).filter(|t| !expected.contains(t)).collect();
        let at = |c: &Contributor, e: &Entry| Source { file: c.file.clone(), line: e.line, note: None };
        let latest = |wanted: &dyn Fn(&Entry) -> bool| {
            sources.contributors.iter().rev().find_map(|c| c.entries.iter().rev().find(|e| wanted(e)).map(|e| at(c, e)))
        };
        let value_is = |e: &Entry, v: &str| e.value.as_deref() == Some(v);
        let by_key = |key: &str| {
            latest(&|e| ends_with_key(&e.path, key) && meaningful && value_is(e, found))
                .or_else(|| latest(&|e| under_key(&e.path, key) && odd.iter().any(|t| value_is(e, t))))
                .or_else(|| latest(&|e| ends_with_key(&e.path, key)))
        };
        keys.iter()
            .find_map(|key| by_key(key))
            .or_else(|| if meaningful { latest(&|e| value_is(e, found)) } else { None })
            .or_else(|| {
                let origin = sources.contributors.first()?;
                Some(Source { file: origin.file.clone(), line: origin.start, note: Some(AT_START) })
            })
    }

    /// A docs-drift fact: the row of the table it names.
    fn in_summary(&self, table: &str, subject: &str) -> Option<Source> {
        let title = table.split('\'').nth(1)?;
        let title = title.to_lowercase();
        let heading = self.summary.iter().position(|l| l.starts_with('#') && l.to_lowercase().contains(&title))?;
        let row = subject.split('[').nth(1).and_then(|r| r.split(']').next()).unwrap_or("");
        let line = self.summary[heading..]
            .iter()
            .position(|l| l.starts_with('|') && !row.is_empty() && l.contains(row))
            .map_or(heading, |offset| heading + offset);
        Some(Source { file: SUMMARY_FILE.into(), line: line + 1, note: None })
    }
}

/// `spec.replicas` ends with `replicas` and `spec.replicas`; `spec.xreplicas`
/// does not.
fn ends_with_key(path: &str, key: &str) -> bool {
    !key.is_empty()
        && path.ends_with(key)
        && (path.len() == key.len() || matches!(path.as_bytes()[path.len() - key.len() - 1], b'.' | b']'))
}

/// The field `key` or anything inside it (`spec.tls[0].hosts[1]` is under
/// `spec.tls`).
fn under_key(path: &str, key: &str) -> bool {
    ends_with_key(path, key)
        || path.match_indices(key).any(|(at, _)| {
            let before = at == 0 || matches!(path.as_bytes()[at - 1], b'.' | b']');
            let after = path.as_bytes().get(at + key.len());
            before && matches!(after, Some(b'.' | b'['))
        })
}

/// The words of a fact's text that could be a field's value.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', '=', ' ', ':', '@', '(', ')', '{', '}']).map(|t| t.trim_matches('"')).filter(|t| !t.is_empty())
}

/// Removes the origin annotations from kustomize's annotated output (and an
/// `annotations:` left empty), so the evidence is what a plain build gives.
pub(crate) fn strip_origins(yaml: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    let mut skipping: Option<usize> = None;
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        if let Some(depth) = skipping {
            if indent > depth && !line.trim().is_empty() {
                continue;
            }
            skipping = None;
        }
        if line.trim_start().starts_with(&format!("{ORIGIN}:")) {
            skipping = Some(indent);
            continue;
        }
        out.push(line);
    }
    // An `annotations:` whose next line is not deeper is now empty.
    let mut kept = Vec::with_capacity(out.len());
    for (index, line) in out.iter().enumerate() {
        if line.trim() == "annotations:" {
            let indent = line.len() - line.trim_start().len();
            let next = out.get(index + 1).map_or(0, |n| n.len() - n.trim_start().len());
            if next <= indent {
                continue;
            }
        }
        kept.push(*line);
    }
    let mut text = kept.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_the_file_s_line_numbers() {
        let text = "# head\napiVersion: v1\nkind: A\nmetadata:\n  name: a\n---\n# two\nkind: B\nmetadata:\n  name: b\n  labels:\n    x: y\n";
        let docs = documents(text, 1);
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].start, docs[1].start), (2, 8));
        let c = contributor("f.yaml", &docs[1]);
        let x = c.entries.iter().find(|e| e.path == "metadata.labels.x").expect("entry");
        assert_eq!((x.line, x.value.as_deref()), (12, Some("y")));
    }

    #[test]
    fn a_json_patch_sets_its_paths() {
        let docs = documents("- op: remove\n  path: /spec/replicas\n- op: add\n  path: /a~1b\n  value: {c: 1}\n", 1);
        let c = contributor("p.yaml", &docs[0]);
        let paths: Vec<(&str, usize)> = c.entries.iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert_eq!(paths, [("spec.replicas", 2), ("a/b", 4), ("a/b.c", 5)]);
    }

    #[test]
    fn keys_match_on_boundaries() {
        assert!(ends_with_key("spec.template.spec.containers[0].resources.limits.cpu", "limits.cpu"));
        assert!(ends_with_key("spec.replicas", "spec.replicas"));
        assert!(!ends_with_key("spec.xreplicas", "replicas"));
        assert!(ends_with_key("metadata.annotations.prometheus.io/path", "prometheus.io/path"));
    }

    #[test]
    fn the_origin_annotation_is_stripped_and_nothing_else() {
        let annotated = "kind: A\nmetadata:\n  annotations:\n    config.kubernetes.io/origin: |\n      path: ../base/a.yaml\n  name: a\n---\nkind: B\nmetadata:\n  annotations:\n    keep: \"1\"\n    config.kubernetes.io/origin: |\n      path: b.yaml\n  name: b\n";
        assert_eq!(
            strip_origins(annotated),
            "kind: A\nmetadata:\n  name: a\n---\nkind: B\nmetadata:\n  annotations:\n    keep: \"1\"\n  name: b\n"
        );
    }
}
