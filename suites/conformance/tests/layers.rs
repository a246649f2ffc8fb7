//! The workspace's shape, kept by tests (docs/design.md, "Layers"):
//! - each crate depends only on the crates of the layers below it;
//! - inside a crate no module imports one that (directly or through
//!   others) imports it back;
//! - errors stay typed: no function returns `Result<_, String>`.
//!
//! Read from the sources as text: a `crate::`/`super::` path names the
//! module it reaches (the longest module prefix), a parent's path through
//! its own child module (`child::item`) names the child. An edge to an
//! enclosing module counts like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn suites() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's crates by layer, bottom first: a crate may depend on
/// the workspace crates of lower layers only (none of its own layer).
const LAYERS: &[&[&str]] = &[
    &["cbam-error-chain"],
    &["cbam-model", "cbam-cluster", "cbam-prober"],
    &["cbam-static-tier", "cbam-live-tier", "cbam-report", "cbam-api-double", "oci-image", "oci-registry"],
    &["cbam-conformance"],
];

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

/// (package name, path dependencies) of every crate under suites/.
fn crates() -> Vec<(String, PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(suites()).expect("read suites/") {
        let dir = entry.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        out.push(parse_manifest(&dir, &text));
    }
    out.sort();
    out
}

/// The package name and the `path = "../x"` dependencies of `[dependencies]`
/// (dev-dependencies may reach up: a test drives its crate from outside).
fn parse_manifest(dir: &Path, text: &str) -> (String, PathBuf, Vec<String>) {
    let mut name = String::new();
    let mut section = String::new();
    let mut deps = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_owned();
        } else if section == "[package]" && line.starts_with("name") {
            name = line.split('"').nth(1).unwrap_or_default().to_owned();
        } else if section == "[dependencies]" && line.contains("path = \"../") {
            deps.push(line.split_whitespace().next().unwrap_or_default().to_owned());
        }
    }
    (name, dir.to_owned(), deps)
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let mut wrong = Vec::new();
    for (name, _, deps) in crates() {
        let Some(own) = layer_of(&name) else {
            wrong.push(format!("{name} is in no layer of LAYERS (tests/layers.rs, docs/design.md)"));
            continue;
        };
        for dep in deps {
            match layer_of(&dep) {
                Some(l) if l < own => {}
                _ => wrong.push(format!("{name} (layer {own}) depends on {dep} (layer {:?})", layer_of(&dep))),
            }
        }
    }
    assert!(wrong.is_empty(), "dependencies that do not point down:\n{}", wrong.join("\n"));
}

/// docs/design.md's table of crates says what each depends on: exactly its
/// manifest's path dependencies (a table that drifted once said the live
/// tier needed only the model and the cluster crate).
#[test]
fn the_design_pages_crate_table_is_the_manifests() {
    let page = std::fs::read_to_string(suites().join("../docs/design.md")).expect("read docs/design.md");
    let manifests: BTreeMap<String, BTreeSet<String>> =
        crates().into_iter().map(|(name, _, deps)| (name, deps.into_iter().collect())).collect();
    let mut rows = 0;
    let mut wrong = Vec::new();
    for line in page.lines().filter(|l| l.starts_with("| `cbam-")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        let said: BTreeSet<String> =
            cells[3].split(',').map(str::trim).filter(|d| d.starts_with("cbam-")).map(str::to_owned).collect();
        rows += 1;
        match manifests.get(name) {
            Some(deps) if *deps == said => {}
            Some(deps) => wrong.push(format!("{name}: the page says {said:?}, Cargo.toml {deps:?}")),
            None => wrong.push(format!("{name}: no such crate under suites/")),
        }
    }
    assert!(rows >= 8, "{rows} crate rows found in docs/design.md");
    assert!(wrong.is_empty(), "docs/design.md's crate table is not the manifests:\n{}", wrong.join("\n"));
}

/// Every `.rs` file under `src` as (module path, text); `lib.rs` is the
/// crate root `crate`, `main.rs` the binary's `main`, `a/mod.rs` and `a.rs`
/// are `crate::a`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            // The binary's root is a crate of its own (it reaches the
            // library by its name): kept apart from the library's root.
            let module = match parts.as_slice() {
                [only] if only == "main" => "main".to_owned(),
                [only] if only == "lib" => "crate".to_owned(),
                _ => std::iter::once("crate".to_owned()).chain(parts).collect::<Vec<_>>().join("::"),
            };
            out.insert(module, without_comments(&std::fs::read_to_string(&path).expect("read module")));
        }
    }
    out
}

/// The code without `//` comments and without its `#[cfg(test)]` module
/// (a unit test may use anything of its crate).
fn without_comments(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The paths in `code` that start with one of `roots` (`crate`, `super`,
/// or a child module's name): each as its `::`-separated words, braces
/// (`crate::a::{b, c::d}`) expanded one level.
fn paths(code: &str, root: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let needle = format!("{root}::");
    let mut rest = code;
    while let Some(at) = rest.find(&needle) {
        let before = rest[..at].chars().next_back();
        let start = at + needle.len();
        rest = &rest[start..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let head: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let head: Vec<String> = head.split("::").filter(|w| !w.is_empty()).map(str::to_owned).collect();
        let after = &rest[head.iter().map(|w| w.len() + 2).sum::<usize>().min(rest.len())..];
        let prefix: Vec<String> = std::iter::once(root.to_owned()).chain(head).collect();
        if after.starts_with('{') || rest.starts_with('{') {
            let inner = after.trim_start_matches('{');
            let group = inner.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let words = item.trim().split(" as ").next().unwrap_or("").split("::").map(|w| w.trim().to_owned());
                out.push(prefix.iter().cloned().chain(words.filter(|w| !w.is_empty())).collect());
            }
        } else {
            out.push(prefix);
        }
    }
    out
}

/// The module a path reaches from `module`: the longest module prefix
/// (`crate::a::Item` reaches `crate::a`; `super::Item` the parent).
fn target(path: &[String], module: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut words: Vec<String> = match path.first().map(String::as_str) {
        Some("crate") => vec!["crate".to_owned()],
        Some("super") => {
            let mut parent: Vec<String> = module.split("::").map(str::to_owned).collect();
            parent.pop();
            parent
        }
        _ => module.split("::").map(str::to_owned).collect(),
    };
    let anchored = matches!(path.first().map(String::as_str), Some("crate" | "super"));
    let mut best = anchored.then(|| words.join("::")).filter(|m| known.contains(m));
    for word in &path[usize::from(anchored)..] {
        if word == "self" {
            continue;
        }
        words.push(word.clone());
        let candidate = words.join("::");
        if !known.contains(&candidate) {
            break;
        }
        best = Some(candidate);
    }
    best
}

/// Module -> modules it imports, for one crate's `src`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, code) in &modules {
        let children: Vec<String> = known
            .iter()
            .filter_map(|k| k.strip_prefix(&format!("{module}::")).filter(|c| !c.contains("::")).map(str::to_owned))
            .collect();
        let mut roots = vec!["crate".to_owned(), "super".to_owned()];
        roots.extend(children);
        let mut to = BTreeSet::new();
        for root in &roots {
            for path in paths(code, root) {
                if let Some(t) = target(&path, module, &known).filter(|t| t != module) {
                    to.insert(t);
                }
            }
        }
        edges.insert(module.clone(), to);
    }
    edges
}

/// The strongly connected groups of more than one module (Tarjan).
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'e> {
        edges: &'e BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'e str, usize>,
        low: BTreeMap<&'e str, usize>,
        stack: Vec<&'e str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'e>(s: &mut State<'e>, v: &'e str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.stack.contains(&w.as_str()) {
                let iw = s.index[w.as_str()];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                group.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut state = State { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in edges.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_crate_has_a_module_loop() {
    let mut found = Vec::new();
    for (name, dir, _) in crates() {
        for group in loops(&imports(&dir.join("src"))) {
            found.push(format!("{name}: {}", group.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "modules that import each other (directly or round a loop):\n{}", found.join("\n"));
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("live")).expect("dirs");
    std::fs::write(src.join("lib.rs"), "mod a;\nmod live;\nmod b;\n").expect("lib");
    std::fs::write(src.join("a.rs"), "use crate::b::Thing;\n").expect("a");
    std::fs::write(src.join("b.rs"), "use crate::live::{run::go, Other};\n// use crate::a::x; (a comment)\n")
        .expect("b");
    std::fs::write(src.join("live.rs"), "mod run;\npub struct Other;\nfn f() { run::go(); }\n").expect("live");
    std::fs::write(src.join("live/run.rs"), "use super::Other;\npub fn go() {}\n").expect("run");
    let edges = imports(src);
    assert_eq!(edges["crate::a"], BTreeSet::from(["crate::b".to_owned()]));
    assert_eq!(edges["crate::b"], BTreeSet::from(["crate::live".to_owned(), "crate::live::run".to_owned()]));
    assert_eq!(loops(&edges), vec![vec!["crate::live".to_owned(), "crate::live::run".to_owned()]]);
}

/// The lines of `code` that name a `Result` whose error is a `String`.
fn string_errors(code: &str) -> Vec<(usize, String)> {
    let squeezed = |line: &str| line.split_whitespace().collect::<String>();
    code.lines()
        .enumerate()
        .filter(|(_, line)| squeezed(line).contains("Result<") && squeezed(line).contains(",String>"))
        .map(|(n, line)| (n + 1, line.trim().to_owned()))
        .collect()
}

#[test]
fn errors_stay_typed() {
    let mut found = Vec::new();
    for (name, dir, _) in crates() {
        for (module, code) in modules(&dir.join("src")) {
            found.extend(string_errors(&code).into_iter().map(|(n, line)| format!("{name} {module}:{n}: {line}")));
        }
    }
    assert!(
        found.is_empty(),
        "a Result with a String error (make it an error enum; strings only at the edge):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_string_error_is_found_and_a_string_value_is_not() {
    let code = "fn a() -> Result<Vec<String>, AError> {}\nfn b(x: u8) -> Result<(), String> {}\n";
    assert_eq!(string_errors(code), vec![(2, "fn b(x: u8) -> Result<(), String> {}".to_owned())]);
}

/// The live tier's roles, bottom first (its lib.rs says why): a module
/// imports only modules of its own role or of roles before it.
const LIVE_ROLES: &[&[&str]] = &[
    &["judges"],
    &["plots"],
    &["journal", "context", "catalog", "apply", "app_pods"],
    &["traffic"],
    &["actions"],
    &["checks"],
    &["run"],
];

fn live_role(module: &str) -> Option<usize> {
    let top = module.split("::").nth(1)?;
    LIVE_ROLES.iter().position(|r| r.contains(&top))
}

/// What breaks the live tier's order in `edges`: an import of a role above
/// the importer's, a module with no role, a check importing another.
fn role_violations(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut wrong = Vec::new();
    // crate::checks::NAME: a check is its module and those below it.
    let check = |m: &str| m.strip_prefix("crate::checks::").and_then(|rest| rest.split("::").next()).map(str::to_owned);
    for (module, targets) in edges.iter().filter(|(m, _)| m.as_str() != "crate") {
        let Some(own) = live_role(module) else {
            wrong.push(format!("{module} has no role in LIVE_ROLES (tests/layers.rs)"));
            continue;
        };
        for target in targets {
            if live_role(target).is_none_or(|r| r > own) {
                wrong.push(format!("{module} imports {target}, a role above it"));
            }
            if let (Some(from), Some(to)) = (check(module), check(target))
                && from != to
            {
                wrong.push(format!("{module} imports {target}: a check never imports another"));
            }
        }
    }
    wrong
}

#[test]
fn the_live_tier_imports_downward_by_role_and_no_check_imports_another() {
    let wrong = role_violations(&imports(&suites().join("live-tier/src")));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_role_judge_finds_an_upward_import_and_a_check_importing_another() {
    let edge = |from: &str, to: &[&str]| (from.to_owned(), to.iter().map(|t| (*t).to_owned()).collect());
    let edges: BTreeMap<String, BTreeSet<String>> = [
        edge("crate::judges::rate_bucket", &["crate::checks"]),
        edge("crate::checks::drain", &["crate::checks::edge", "crate::traffic::https"]),
        edge("crate::checks::autoscaling::sampler", &["crate::checks::autoscaling", "crate::context"]),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        role_violations(&edges),
        vec![
            "crate::checks::drain imports crate::checks::edge: a check never imports another".to_owned(),
            "crate::judges::rate_bucket imports crate::checks, a role above it".to_owned(),
        ]
    );
}
