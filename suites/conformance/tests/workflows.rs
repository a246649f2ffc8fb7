//! .github/workflows and ci/: actionlint passes, every `just` recipe the workflows and .ci/run
//! call exists, with flags the front door accepts, and the kit's own CoreDNS
//! main compiles every plugin the kit's Corefile names.

use std::path::{Path, PathBuf};
use std::process::Command;

use cbam_conformance::cli::Cli;
use clap::Parser;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(".github/workflows"))
        .expect(".github/workflows exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no workflow in .github/workflows");
    files
}

/// Every `run:` script of a workflow.
fn run_scripts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read workflow");
    let doc: Value = serde_norway::from_str(&text).expect("workflow is YAML");
    let mut scripts = Vec::new();
    for job in doc["jobs"].as_object().expect("jobs").values() {
        for step in job["steps"].as_array().into_iter().flatten() {
            if let Some(run) = step["run"].as_str() {
                scripts.push(run.to_owned());
            }
        }
    }
    scripts
}

/// `just RECIPE ARGS...` invocations in a script (line continuations joined).
fn just_calls(script: &str) -> Vec<Vec<String>> {
    let joined = without_expressions(&script.replace("\\\n", " "));
    joined
        .lines()
        .filter_map(|line| {
            let words: Vec<String> = line.split_whitespace().map(|w| w.trim_matches('"').to_owned()).collect();
            let at = words.iter().position(|w| w == "just")?;
            // The call ends where the shell takes over: a redirection, a
            // pipe, a background `&`, a list operator or a comment.
            let call: Vec<String> = words[at + 1..]
                .iter()
                .take_while(|w| !w.starts_with(['>', '<', '|', '&', ';', '#', ')']) && !w.starts_with("2>"))
                .cloned()
                .collect();
            Some(call)
        })
        .filter(|call| !call.is_empty())
        .collect()
}

/// `${{ matrix.env }}` stands for an environment, any other expression for a word.
fn without_expressions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else { break };
        let expr = &rest[start..start + len + 2];
        out.push_str(if expr.contains("matrix.env") { "production" } else { "expr" });
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

fn recipes() -> Vec<String> {
    let out = Command::new("just").arg("--summary").current_dir(root()).output().expect("run just --summary");
    assert!(out.status.success(), "just --summary failed");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

#[test]
fn actionlint_passes() {
    let out = Command::new("actionlint")
        .arg("-no-color")
        .args(workflows())
        .current_dir(root())
        .output()
        .expect("actionlint on PATH (bash ci/install-tools.sh installs it)");
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn workflows_and_ci_call_existing_recipes_with_valid_flags() {
    let known = recipes();
    let mut scripts: Vec<(String, String)> = workflows()
        .iter()
        .flat_map(|p| run_scripts(p).into_iter().map(move |s| (p.display().to_string(), s)))
        .collect();
    for script in [".ci/run", "ci/release-gate-existing.sh"] {
        scripts.push((script.into(), std::fs::read_to_string(root().join(script)).expect("read a CI script")));
    }
    let mut conformance_calls = 0;
    for (origin, script) in &scripts {
        for call in just_calls(script) {
            assert!(
                known.contains(&call[0]),
                "{origin} calls `just {}`, which the Justfile lacks ({known:?})",
                call[0]
            );
            if call[0] == "conformance" {
                conformance_calls += 1;
                // Expressions stand for a real environment or path at run time.
                let argv = call[1..].iter().map(|w| {
                    // A workflow's matrix or a script's ENV argument.
                    if w.contains("matrix.env") || w == "$env_name" {
                        "production".to_owned()
                    } else if w.starts_with('$') {
                        "/tmp/x".to_owned()
                    } else {
                        w.clone()
                    }
                });
                let parsed = Cli::try_parse_from(std::iter::once("conformance".to_owned()).chain(argv));
                assert!(
                    parsed.is_ok(),
                    "{origin}: `just {}` is not a valid front-door call: {:?}",
                    call.join(" "),
                    parsed.err()
                );
            }
        }
    }
    assert!(conformance_calls >= 4, "expected the nightly, both gate jobs and .ci/run to call `just conformance`");
}

/// The directives of the kit's Corefile (its server block, one per line).
fn corefile_directives() -> Vec<String> {
    let text =
        std::fs::read_to_string(root().join("ci/kit/node/addons/10-coredns.yaml")).expect("read the CoreDNS addon");
    let corefile = text.split("Corefile: |").nth(1).expect("a Corefile").split("\n---").next().unwrap_or_default();
    corefile
        .lines()
        .filter(|l| l.starts_with("        ") && !l.starts_with("         "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|d| *d != "}")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_kit_coredns_has_every_plugin_its_corefile_uses() {
    let main = std::fs::read_to_string(root().join("ci/kit/main/coredns.go")).expect("read ci/kit/main/coredns.go");
    let directives = corefile_directives();
    assert!(directives.len() >= 5, "too few directives read from the Corefile: {directives:?}");
    // A directive is served by the plugin package of its name, but for `prometheus`.
    let missing: Vec<&String> = directives
        .iter()
        .filter(|d| {
            let package = if d.as_str() == "prometheus" { "metrics" } else { d.as_str() };
            !main.contains(&format!("\"github.com/coredns/coredns/plugin/{package}\""))
        })
        .collect();
    assert!(missing.is_empty(), "ci/kit/main/coredns.go does not compile the Corefile's plugins {missing:?}");
}

/// `ci/fresh-binary.sh BIN` in a made-up checkout: its exit code.
fn fresh(checkout: &Path, bin: &Path) -> i32 {
    let status = Command::new("bash")
        .arg(root().join("ci/fresh-binary.sh"))
        .arg(bin)
        .env("CBAM_CHECKOUT", checkout)
        .status()
        .expect("run ci/fresh-binary.sh");
    status.code().unwrap_or(-1)
}

/// Sets a file's time, as `touch -d` does.
fn touch(path: &Path, when: &str) {
    let status = Command::new("touch").arg("-d").arg(when).arg(path).status().expect("touch");
    assert!(status.success(), "touch {}", path.display());
}

#[test]
fn the_front_door_runs_its_binary_unbuilt_only_when_nothing_it_was_built_from_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkout = dir.path().join("my checkout");
    let src = checkout.join("suites/x/src");
    std::fs::create_dir_all(&src).expect("dirs");
    for file in ["Cargo.lock", "Cargo.toml", "suites/x/Cargo.toml", "suites/x/src/main.rs", "suites/x/src/a b.rs"] {
        std::fs::write(checkout.join(file), "").expect("write");
        touch(&checkout.join(file), "2026-01-01 00:00:00");
    }
    let bin = dir.path().join("conformance");
    std::fs::write(&bin, "").expect("binary");
    let permissions = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&bin, permissions).expect("chmod");
    let deps = |extra: &str| {
        let main = src.join("main.rs").display().to_string().replace(' ', "\\ ");
        let spaced = src.join("a b.rs").display().to_string().replace(' ', "\\ ");
        std::fs::write(bin.with_extension("d"), format!("{}: {main} {spaced}{extra}\n", bin.display()))
            .expect("dep-info");
        touch(&bin, "2026-01-02 00:00:00");
    };
    deps("");
    assert_eq!(fresh(&checkout, &bin), 0, "built after every source: fresh");
    touch(&src.join("a b.rs"), "2026-01-03 00:00:00");
    assert_eq!(fresh(&checkout, &bin), 1, "a source newer than the binary");
    touch(&src.join("a b.rs"), "2026-01-01 00:00:00");
    touch(&checkout.join("Cargo.lock"), "2026-01-03 00:00:00");
    assert_eq!(fresh(&checkout, &bin), 1, "the lock file newer than the binary");
    touch(&checkout.join("Cargo.lock"), "2026-01-01 00:00:00");
    deps(&format!(" {}", src.join("gone.rs").display()));
    assert_eq!(fresh(&checkout, &bin), 1, "a source that is gone");
    let other = dir.path().join("other.rs");
    std::fs::write(&other, "").expect("write");
    touch(&other, "2026-01-01 00:00:00");
    deps(&format!(" {}", other.display()));
    assert_eq!(fresh(&checkout, &bin), 1, "built from another checkout");
    std::fs::remove_file(bin.with_extension("d")).expect("rm dep-info");
    assert_eq!(fresh(&checkout, &bin), 1, "no dep-info");
}
