//! The README lists every check id, so users can find what a failure means,
//! and its exit-code table is the one the code implements.

use cbam_live_tier::checks::LIVE_CHECKS;
use cbam_static_tier::checks::CHECKS;

#[test]
fn readme_names_every_check() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let ids = CHECKS.iter().map(|c| c.id).chain(LIVE_CHECKS.iter().map(|c| c.id));
    let missing: Vec<&str> = ids.filter(|id| !readme.contains(&format!("`{id}`"))).collect();
    assert!(missing.is_empty(), "README.md does not name the checks {missing:?}");
}

#[test]
fn readme_live_table_is_the_live_check_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let rows: Vec<String> = readme.lines().filter(|l| l.starts_with("| `live-")).map(str::to_owned).collect();
    let table: Vec<String> = LIVE_CHECKS.iter().map(|c| format!("| `{}` | {} |", c.id, c.about)).collect();
    assert_eq!(
        rows,
        table,
        "README.md's live checks differ from LIVE_CHECKS (suites/live-tier/src/checks/mod.rs); the table it should hold:\n{}",
        table.join("\n")
    );
}

#[test]
fn readme_is_a_front_page() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let size = std::fs::metadata(path).expect("README.md").len();
    assert!(size <= 6 * 1024, "README.md is {size} bytes: the reference belongs in docs/");
}

#[test]
fn readme_exit_code_table_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    // Rows like "  | 3 | `incomplete` | ...".
    let rows: Vec<(u8, String)> = readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_start_matches('|').split('|').map(str::trim).collect();
            let code = cells.first()?.parse::<u8>().ok()?;
            let status = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((code, status.to_owned()))
        })
        .collect();
    let code: Vec<(u8, String)> =
        cbam_conformance::exit_code::exit_codes().iter().map(|(c, s)| (*c, (*s).to_owned())).collect();
    assert_eq!(rows, code, "README.md's exit-code table differs from the code");
}

/// A measurement cites its date and commit: a reader cannot look up which
/// sitting made it. Every tracked text file is read (code comments and the
/// README included).
#[test]
fn no_document_cites_a_session() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("run git ls-files (the checkout is a git clone)");
    assert!(listed.status.success(), "git ls-files failed");
    let files: Vec<String> = listed
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    assert!(files.len() > 100, "{} tracked files", files.len());
    let mut found = Vec::new();
    for file in files {
        // Binary files are not text: skipped.
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else { continue };
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let cites = lower.match_indices("session ").any(|(i, _)| {
                lower[i + "session ".len()..].starts_with(|c: char| c.is_ascii_digit()) || lower[..i].ends_with("this ")
            });
            if cites {
                found.push(format!("{file}:{}", n + 1));
            }
        }
    }
    assert!(found.is_empty(), "cite the date and commit instead: {found:?}");
}

#[test]
fn adding_a_check_shows_the_compiled_examples() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
    let page = std::fs::read_to_string(format!("{docs}/adding-a-check.md")).expect("read adding-a-check.md");
    for example in ["static_check.rs", "live_check.rs"] {
        let code = std::fs::read_to_string(format!("{docs}/examples/{example}")).expect("read the example");
        assert!(
            page.contains(&format!("```rust\n{code}```")),
            "adding-a-check.md does not show docs/examples/{example} as it is"
        );
    }
}
