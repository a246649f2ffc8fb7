//! Every program the harness runs inside a kind node, and every command of
//! every script it gives a node's shell (`cbam_cluster::node_exec`), comes
//! with kind's base image: a Debian package of the pinned kind module's
//! Dockerfile (its `clean-install` list) or of the Debian image it starts
//! from (the packages Debian marks Essential, which debian:trixie-slim has).
//! kind's published `kindest/node` is built from that same recipe, so a step
//! that passes here runs there too; one that needs anything else (`wget`,
//! which a node step once used) fails here, naming it.

use std::collections::BTreeSet;
use std::path::Path;

use cbam_cluster::node_exec::{NodeProgram, SCRIPTS};

const VERSIONS: &str = include_str!("../../../ci/versions.env");

/// The packages Debian marks Essential in trixie (`dpkg-query -W -f
/// '${Package} ${Essential}'` in debian:trixie-slim): present in every
/// Debian image, kind's included.
const ESSENTIAL: [&str; 21] = [
    "base-files",
    "base-passwd",
    "bash",
    "bsdutils",
    "coreutils",
    "dash",
    "debianutils",
    "diffutils",
    "findutils",
    "grep",
    "gzip",
    "hostname",
    "init-system-helpers",
    "libc-bin",
    "login",
    "ncurses-bin",
    "perl-base",
    "sed",
    "sysvinit-utils",
    "tar",
    "util-linux",
];

/// The Debian package each command the harness may run in a node comes
/// from. A command not listed here fails the test until it is added with its
/// package, and its package must be kind's or Essential.
const PACKAGE_OF: [(&str, &str); 20] = [
    ("sh", "dash"),
    ("bash", "bash"),
    ("cat", "coreutils"),
    ("mkdir", "coreutils"),
    ("rm", "coreutils"),
    ("sleep", "coreutils"),
    ("tail", "coreutils"),
    ("timeout", "coreutils"),
    ("grep", "grep"),
    ("setsid", "util-linux"),
    ("systemctl", "systemd"),
    ("curl", "curl"),
    ("jq", "jq"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("sed", "sed"),
    ("ps", "procps"),
    ("sysctl", "procps"),
    ("wget", "wget"),
    ("busybox", "busybox"),
];

fn kind_packages() -> BTreeSet<String> {
    let version = VERSIONS.lines().find_map(|l| l.strip_prefix("KIND_VERSION=")).expect("KIND_VERSION pinned");
    let out = std::process::Command::new("go").args(["env", "GOMODCACHE"]).output().expect("run go env");
    let cache = String::from_utf8(out.stdout).expect("UTF-8");
    let dockerfile = Path::new(cache.trim()).join(format!("sigs.k8s.io/kind@{version}/images/base/Dockerfile"));
    let text = std::fs::read_to_string(&dockerfile).unwrap_or_else(|e| {
        panic!("read {}: {e} (ci/install-tools.sh installs kind from its module)", dockerfile.display())
    });
    let list = text.split("clean-install \\").nth(1).expect("kind's Dockerfile runs clean-install");
    let mut packages = BTreeSet::new();
    for line in list.lines().skip(1) {
        if line.trim_start().starts_with("&&") {
            break;
        }
        packages.extend(line.trim_end_matches('\\').split_whitespace().map(str::to_owned));
    }
    assert!(packages.contains("systemd") && packages.len() > 10, "kind's package list not found: {packages:?}");
    packages
}

/// Shell words that only open or close a command: skipped to find it.
const KEYWORDS: [&str; 13] =
    ["if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac"];

/// dash's and bash's builtins (and the loop heads): a command that starts
/// with one runs no program of the node.
const BUILTINS: [&str; 22] = [
    "set", "exit", "echo", "printf", "kill", "test", "[", ":", ".", "read", "local", "cd", "export", "return", "shift",
    "true", "false", "exec", "wait", "trap", "for", "case",
];

/// SCRIPT with quoted text replaced by `"Q"` (data, not commands), except
/// command substitutions inside double quotes, which stay code, and with
/// arithmetic expansions removed.
fn code_of(script: &str) -> String {
    let chars: Vec<char> = script.chars().collect();
    let mut out = String::new();
    let (mut i, mut quote, mut inner) = (0, None::<char>, 0usize);
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match quote {
            _ if c == '$' && next == Some('(') && chars.get(i + 2) == Some(&'(') => {
                // $(( ... )): arithmetic, no command.
                let mut depth = 0;
                while i < chars.len() {
                    match chars[i] {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                    if depth == 0 && chars[i - 1] == ')' {
                        break;
                    }
                }
                continue;
            }
            Some('"') if inner == 0 && c == '$' && next == Some('(') => {
                out.push(';');
                inner = 1;
                i += 2;
                continue;
            }
            Some('"') if inner > 0 => match c {
                '(' => {
                    inner += 1;
                    out.push(c);
                }
                ')' => {
                    inner -= 1;
                    out.push(if inner == 0 { ';' } else { c });
                }
                _ => out.push(c),
            },
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push_str("\"Q\"");
            }
            None => out.push(c),
        }
        i += 1;
    }
    out
}

/// The commands SCRIPT runs: the first word of each simple command, past
/// shell keywords, assignments and redirections; builtins run none, and a
/// quoted or `$...` word is a binary the harness copied in itself.
fn commands(script: &str) -> BTreeSet<String> {
    let without_comments: Vec<&str> = script
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split(" #").next().unwrap_or_default())
        .collect();
    let code = code_of(&without_comments.join("\n"));
    let code = code.replace(">&", ">").replace("<&", "<").replace("$(", ";");
    let mut found = BTreeSet::new();
    for segment in code.split(['\n', ';', '|', '&', '(', ')', '`']) {
        let mut words = segment.split_whitespace().skip_while(|w| KEYWORDS.contains(w)).skip_while(|w| {
            w.contains('=') || w.trim_start_matches(|c: char| c.is_ascii_digit()).starts_with(['<', '>'])
        });
        let Some(word) = words.next() else { continue };
        if BUILTINS.contains(&word) || word.starts_with(['"', '$']) {
            continue;
        }
        found.insert(word.to_owned());
    }
    found
}

/// What of PROGRAMS is not shipped by kind's base image: each with why.
fn missing(programs: &BTreeSet<String>, kind: &BTreeSet<String>) -> Vec<String> {
    programs
        .iter()
        .filter_map(|program| match PACKAGE_OF.iter().find(|(p, _)| p == program) {
            None => Some(format!("{program}: no package known (add it to PACKAGE_OF)")),
            Some((_, package)) if kind.contains(*package) || ESSENTIAL.contains(package) => None,
            Some((_, package)) => Some(format!("{program}: package {package} is not in kind's base image")),
        })
        .collect()
}

#[test]
fn every_node_side_step_uses_only_what_kinds_base_image_installs() {
    let kind = kind_packages();
    let mut programs: BTreeSet<String> = NodeProgram::ALL.iter().map(|p| p.name().to_owned()).collect();
    for (name, script) in SCRIPTS {
        let found = commands(script);
        assert!(!found.is_empty(), "{name}: no command found");
        programs.extend(found);
    }
    let missing = missing(&programs, &kind);
    assert!(missing.is_empty(), "node-side steps a kind node cannot run:\n{}", missing.join("\n"));
}

/// The mutation: a step that fetches with wget (as serve-image.sh once
/// did) is refused, and so is a program nobody looked up.
#[test]
fn a_node_step_that_calls_wget_fails_it() {
    let kind = kind_packages();
    let script = "set -eu\nuntil wget -q -O /dev/null http://127.0.0.1:5000/v2/; do sleep 0.1; done\nnc -z x 1";
    let found = commands(script);
    assert_eq!(found, ["nc", "sleep", "wget"].iter().map(|s| s.to_string()).collect());
    let missing = missing(&found, &kind);
    assert_eq!(
        missing,
        ["nc: no package known (add it to PACKAGE_OF)", "wget: package wget is not in kind's base image"]
    );
}

#[test]
fn the_scripts_commands_are_found() {
    let serve = SCRIPTS.iter().find(|(n, _)| *n == "serve-image.sh").expect("serve-image.sh").1;
    let found = commands(serve);
    for want in ["setsid", "grep", "mkdir", "rm", "cat", "sleep", "tail"] {
        assert!(found.contains(want), "{want} not found in serve-image.sh: {found:?}");
    }
}
