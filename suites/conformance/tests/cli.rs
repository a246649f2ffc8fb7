//! The front door as users call it: exit codes, one-line failures, input
//! errors naming the file and reason, and evidence that never lies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cbam_conformance::mutation::copy_tree;
use rstest::rstest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn conformance(args: &[&str], report: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .current_dir(root())
        .args(args)
        .arg("--report")
        .arg(report)
        .output()
        .expect("run the conformance binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn summary(report: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(report.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&raw).expect("summary.json is JSON")
}

/// A scratch copy of infra/ that a test may break.
fn infra_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let infra = dir.path().join("infra");
    copy_tree(&root().join("infra"), &infra).expect("copy infra");
    (dir, infra)
}

fn edit(infra: &Path, file: &str, find: &str, replace: &str) {
    let path = infra.join(file);
    let original = std::fs::read_to_string(&path).expect("read infra file");
    assert_eq!(original.matches(find).count(), 1, "{find:?} must occur once in {file}");
    std::fs::write(&path, original.replacen(find, replace, 1)).expect("write infra file");
}

#[test]
fn all_environments_conform_statically() {
    let report = tempfile::tempdir().expect("temp dir");
    let out = conformance(&["all", "--tier", "static"], report.path());
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    let json = summary(report.path());
    assert_eq!(json["status"], "pass");
    assert_eq!(json["counts"]["failed"], 0);
    assert_eq!(json["environments"].as_array().map(Vec::len), Some(3));
    assert!(report.path().join("junit.xml").is_file());
    assert!(report.path().join("rendered/production.yaml").is_file());
    assert!(text(&out.stdout).contains("3 -> 5 @0s -> 8 @60s -> 12 @120s -> 15 @180s"), "prints the HPA timeline");
    // Every static fact names the file and line it comes from, in the tree
    // as given (`infra/...`, relative to where the harness ran).
    let facts: Vec<&serde_json::Value> =
        json["checks"].as_array().expect("checks").iter().flat_map(|c| c["facts"].as_array().expect("facts")).collect();
    let unplaced: Vec<_> = facts
        .iter()
        .filter(|f| {
            !f["source"]["file"].as_str().is_some_and(|p| p.starts_with("infra/"))
                || f["source"]["line"].as_u64() < Some(1)
        })
        .map(|f| format!("{} {}", f["object"], f["subject"]))
        .collect();
    assert!(facts.len() > 400 && unplaced.is_empty(), "facts without a source: {unplaced:#?}");
}

/// A fourth environment is data: an overlay, a fixture and a summary column
/// (here `qa`, a copy of staging) in a scratch tree, and the static tier
/// checks it like the others, with no change to the harness.
#[test]
fn a_new_environment_is_an_overlay_a_fixture_and_a_summary_column() {
    let (dir, infra) = infra_copy();
    let fixtures = dir.path().join("fixtures");
    copy_tree(&root().join("fixtures"), &fixtures).expect("copy fixtures");
    copy_tree(&infra.join("kustomize/overlays/staging"), &infra.join("kustomize/overlays/qa")).expect("copy overlay");
    let staging = std::fs::read_to_string(fixtures.join("environments/staging.yaml")).expect("staging fixture");
    let qa = staging.replacen("environment: staging", "environment: qa", 1).replacen(
        "display_name: Staging",
        "display_name: QA",
        1,
    );
    std::fs::write(fixtures.join("environments/qa.yaml"), qa).expect("write the qa fixture");
    // The summary: a QA row in the overlays table, a QA column in the comparison.
    let summary_path = infra.join("INFRASTRUCTURE_SUMMARY.md");
    let table_text = std::fs::read_to_string(&summary_path).expect("summary");
    let mut lines = Vec::new();
    let mut in_comparison = false;
    for line in table_text.lines() {
        in_comparison = in_comparison || line.starts_with("| Feature | Development | Staging |");
        if line.starts_with("| **Staging** |") {
            lines.push(line.to_owned());
            lines.push(line.replacen("**Staging**", "**QA**", 1));
        } else if in_comparison && line.starts_with('|') {
            let cells: Vec<&str> = line.split('|').collect();
            let added = if line.starts_with("| Feature") { " QA ".to_owned() } else { cells[3].to_owned() };
            lines.push(format!("{line}{added}|"));
        } else {
            in_comparison = false;
            lines.push(line.to_owned());
        }
    }
    std::fs::write(&summary_path, lines.join("\n") + "\n").expect("write the summary");
    let (infra_arg, fixtures_arg) = (infra.display().to_string(), fixtures.display().to_string());
    for env in ["qa", "all"] {
        let report = tempfile::tempdir().expect("temp dir");
        let args = [env, "--tier", "static", "--infra", &infra_arg, "--fixtures", &fixtures_arg];
        let out = conformance(&args, report.path());
        assert_eq!(out.status.code(), Some(0), "{env}: stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
        let json = summary(report.path());
        let envs = json["environments"].as_array().map(Vec::len);
        assert_eq!(envs, Some(if env == "qa" { 1 } else { 4 }), "{env}: {}", json["environments"]);
        assert!(report.path().join("rendered/qa.yaml").is_file(), "{env}: rendered/qa.yaml");
    }
}

/// Asked for and not verified: exit 3, "incomplete" everywhere, never a pass.
fn assert_incomplete(out: &Output, report: &Path) {
    assert_eq!(out.status.code(), Some(3), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("LIVE TIER NOT VERIFIED"), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("INCOMPLETE:"), "stdout:\n{}", text(&out.stdout));
    let json = summary(report);
    assert_eq!(json["status"], "incomplete");
    assert_eq!(json["counts"]["not_verified"], 1);
    assert_eq!(json["skipped"][0]["tier"], "live");
    let junit = std::fs::read_to_string(report.join("junit.xml")).expect("junit");
    assert!(junit.contains("<skipped"), "{junit}");
    let md = std::fs::read_to_string(report.join("summary.md")).expect("summary.md");
    assert!(md.contains("**INCOMPLETE**") && !md.contains("PASS"), "{md}");
}

#[rstest]
#[case::default_tier(&["production"])]
#[case::live_tier(&["production", "--tier", "live"])]
#[case::kind(&["production", "--cluster", "kind"])]
fn no_container_engine_is_incomplete_not_passed(#[case] args: &[&str]) {
    let report = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .current_dir(root())
        .args(args)
        .arg("--report")
        .arg(report.path())
        // An engine address nothing answers on.
        .env("DOCKER_HOST", format!("unix://{}/no-engine.sock", report.path().display()))
        .output()
        .expect("run the conformance binary");
    assert_incomplete(&out, report.path());
}

#[test]
fn a_report_directory_holds_exactly_one_run() {
    let report = tempfile::tempdir().expect("temp dir");
    let dir = report.path().join("evidence");
    for stale in ["diagnostics/production", "autoscaling", "rendered"] {
        std::fs::create_dir_all(dir.join(stale)).expect("stale dir");
    }
    std::fs::write(dir.join("autoscaling/custom.svg"), "<svg/>").expect("stale file");
    std::fs::write(dir.join("error.txt"), "an earlier error").expect("stale file");
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .current_dir(root())
        .args(["dev", "--tier", "static", "--report"])
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .expect("report")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    entries.sort();
    assert_eq!(entries, ["junit.xml", "rendered", "results.sarif", "summary.json", "summary.md"]);
    let siblings: Vec<String> = std::fs::read_dir(report.path())
        .expect("parent")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    assert_eq!(siblings, ["evidence"], "no staging directory left behind");
}

#[test]
fn a_directory_that_is_not_a_report_is_never_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("user file");
    let out = conformance(&["dev", "--tier", "static"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("\"notes.txt\", which no report writes"), "{}", text(&out.stderr));
    assert!(dir.path().join("notes.txt").is_file());
}

#[test]
fn a_failed_check_exits_1_with_one_line_naming_check_object_expected_found() {
    let (_dir, infra) = infra_copy();
    edit(&infra, "pdb.yaml", "minAvailable: 2", "minAvailable: 3");
    let report = tempfile::tempdir().expect("temp dir");
    let out =
        conformance(&["production", "--tier", "static", "--infra", infra.to_str().expect("utf-8")], report.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l
            == format!(
                "FAIL [production] pdb: PodDisruptionBudget gl-cbam/cbam-api-pdb minAvailable: expected 2, found 3 at {}/pdb.yaml:13",
                infra.display()
            )),
        "{stdout}"
    );
    assert_eq!(summary(report.path())["status"], "fail");
    let junit = std::fs::read_to_string(report.path().join("junit.xml")).expect("junit");
    assert!(junit.contains("<failure"), "{junit}");
}

#[rstest]
#[case::unknown_env(&["qa", "--tier", "static"], "find environment \"qa\": no fixtures/environments/qa.yaml")]
#[case::malformed_env(&["../qa", "--tier", "static"], "use \"../qa\" as an environment name")]
#[case::unknown_tier(&["dev", "--tier", "cluster"], "invalid value 'cluster'")]
#[case::bad_fit(&["dev", "--fit", "0"], "expected `auto` or a factor >= 1")]
#[case::cleanup_only_needs_existing(&["production", "--cleanup-only"], "--cleanup-only needs --cluster existing")]
#[case::cleanup_only_unreadable_kubeconfig(
    &["production", "--cleanup-only", "--cluster", "existing", "--kubeconfig", "/nonexistent/kubeconfig"],
    "failed to read the kubeconfig /nonexistent/kubeconfig"
)]
#[case::upgrade_to_needs_the_kit(
    &["production", "--cluster", "kind", "--upgrade-to", "cbam-kit/node:next"],
    "failed to use --upgrade-to with --cluster kind: only the kit (k3s) joins new workers"
)]
#[case::unknown_live_check(&["production", "--skip-check", "live-nothing"], "not a live check id: \"live-nothing\"")]
#[case::rollout_not_skippable(&["production", "--skip-check", "live-rollout"], "live-rollout cannot be skipped")]
#[case::unknown_timeout(&["production", "--timeout", "patience=9"], "override timeout \"patience\": not one of")]
#[case::malformed_timeout(&["production", "--timeout", "rollout"], "expected NAME=SECONDS")]
#[case::empty_tool_image(&["production", "--cluster", "existing", "--tool-image", ""], "--tool-image <REF>")]
#[case::missing_tool_archive(
    &["production", "--tier", "live", "--cluster", "existing", "--tool-archive", "/nonexistent/cbam-tool.tar"],
    "failed to find the harness's tool image: read the tool image archive /nonexistent/cbam-tool.tar (run `just image`)"
)]
#[case::missing_infra(&["dev", "--tier", "static", "--infra", "/nonexistent/infra"], "/nonexistent/infra: no such directory")]
#[case::missing_baseline(
    &["dev", "--tier", "static", "--baseline", "/nonexistent/release"],
    "find baseline infra tree /nonexistent/release: no such directory"
)]
fn usage_and_input_errors_exit_2(#[case] args: &[&str], #[case] message: &str) {
    let report = tempfile::tempdir().expect("temp dir");
    let out = conformance(args, report.path());
    assert_eq!(out.status.code(), Some(2), "stdout:\n{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(message), "stderr:\n{}", text(&out.stderr));
}

#[rstest]
#[case::malformed_overlay_yaml(
    "kustomize/base/service.yaml",
    "  type: ClusterIP\n",
    "  type: [ClusterIP\n",
    "service.yaml"
)]
#[case::malformed_governance_yaml("hpa.yaml", "  minReplicas: 3\n", "  minReplicas: [3\n", "hpa.yaml")]
#[case::unknown_field(
    "kustomize/base/deployment.yaml",
    "terminationGracePeriodSeconds: 30",
    "terminationGracePeriod: 30",
    "unknown field(s) spec.template.spec.terminationGracePeriod"
)]
#[case::wrong_type("pdb.yaml", "minAvailable: 2", "minAvailable: [2]", "decode PodDisruptionBudget cbam-api-pdb")]
#[case::unknown_kind(
    "limitrange.yaml",
    "apiVersion: v1\nkind: LimitRange",
    "apiVersion: example.com/v1\nkind: Limits",
    "unknown kind example.com/v1/Limits"
)]
#[case::kustomize_failure(
    "kustomize/overlays/dev/kustomization.yaml",
    "path: patches/resource-patch.yaml",
    "path: patches/missing-patch.yaml",
    "missing-patch.yaml"
)]
fn bad_input_exits_2_naming_the_file_and_reason(
    #[case] file: &str,
    #[case] find: &str,
    #[case] replace: &str,
    #[case] message: &str,
) {
    let (_dir, infra) = infra_copy();
    edit(&infra, file, find, replace);
    let report = tempfile::tempdir().expect("temp dir");
    // A stale success must not survive a run that errors.
    std::fs::write(report.path().join("summary.json"), r#"{"status":"pass"}"#).expect("stale report");
    let out = conformance(&["all", "--tier", "static", "--infra", infra.to_str().expect("utf-8")], report.path());
    assert_eq!(out.status.code(), Some(2), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: failed to "), "{stderr}");
    assert!(stderr.contains(message), "expected {message:?} in:\n{stderr}");
    assert_eq!(summary(report.path())["status"], "error");
    assert!(!report.path().join("junit.xml").exists());
}

#[test]
fn a_scenario_on_a_metric_the_hpa_lacks_exits_2_naming_the_fixture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixtures = dir.path().join("fixtures");
    copy_tree(&root().join("fixtures"), &fixtures).expect("copy fixtures");
    let path = fixtures.join("autoscaling.yaml");
    let yaml = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, yaml.replacen("metric: resource/cpu", "metric: resource/gpu", 1)).expect("write");
    let report = tempfile::tempdir().expect("temp dir");
    let out = conformance(
        &["production", "--tier", "static", "--fixtures", fixtures.to_str().expect("utf-8")],
        report.path(),
    );
    assert_eq!(out.status.code(), Some(2), "stdout:\n{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("autoscaling.yaml: scenario cpu: metric resource/gpu is not one of the HPA's"), "{stderr}");
}

#[test]
fn a_committed_secret_fails_without_its_value_reaching_any_output() {
    const VALUE: &str = "never-print-this-value";
    let (_dir, infra) = infra_copy();
    let path = infra.join("kustomize/base/serviceaccount.yaml");
    let mut yaml = std::fs::read_to_string(&path).expect("read");
    yaml.push_str(&format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: cbam-api-secrets\nstringData:\n  DATABASE_URL: postgres://u:{VALUE}@db/cbam\n"
    ));
    std::fs::write(&path, yaml).expect("write");
    let report = tempfile::tempdir().expect("temp dir");
    let out = conformance(&["dev", "--tier", "static", "-v", "--infra", infra.to_str().expect("utf-8")], report.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("secret-not-committed"));
    assert!(!text(&out.stdout).contains(VALUE) && !text(&out.stderr).contains(VALUE));
    // Every file of the evidence, the rendered manifests included.
    let mut files = vec![report.path().to_owned()];
    let mut read = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).expect("dir").map(|e| e.expect("entry").path()));
        } else {
            let body = std::fs::read_to_string(&path).expect("report file");
            assert!(!body.contains(VALUE), "{} leaks the secret value", path.display());
            read += 1;
        }
    }
    assert!(read >= 4, "summary.json, junit.xml, summary.md and rendered/dev.yaml read");
    let rendered = std::fs::read_to_string(report.path().join("rendered/dev.yaml")).expect("rendered");
    assert!(rendered.contains("DATABASE_URL: redacted:sha256:"), "the key is kept:\n{rendered}");
}

/// The SARIF log validates against the published SARIF 2.1.0 schema, is the
/// same on stdout and in the report, and places a failure at the line that
/// broke it.
#[test]
fn sarif_validates_and_points_at_the_line_that_broke() {
    let (_dir, infra) = infra_copy();
    edit(&infra, "pdb.yaml", "minAvailable: 2", "minAvailable: 3");
    let report = tempfile::tempdir().expect("temp dir");
    let infra_arg = infra.to_str().expect("utf-8");
    let out =
        conformance(&["production", "--tier", "static", "--infra", infra_arg, "--format", "sarif"], report.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is the SARIF log");
    // The published schema, with its one typo (the language patterns of
    // `run` and `toolComponent` end `]?$`, a stray `]` no regex engine here
    // compiles) mended in memory.
    let published = include_str!("data/sarif-2.1.0-rtm.5.json");
    let typo = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#;
    assert_eq!(published.matches(typo).count(), 2, "the schema's one known typo, in its two places");
    let schema: serde_json::Value =
        serde_json::from_str(&published.replace(typo, r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}$""#)).expect("schema");
    let validator = jsonschema::draft4::new(&schema).expect("the published schema");
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path().join("results.sarif")).expect("results.sarif"))
            .expect("JSON");
    assert_eq!(file, log, "stdout and results.sarif are one log");
    let results = log["runs"][0]["results"].as_array().expect("results");
    let pdb = results.iter().find(|r| r["ruleId"] == "pdb").expect("the pdb failure");
    let region = &pdb["locations"][0]["physicalLocation"];
    assert_eq!(region["artifactLocation"]["uri"], format!("file://{}/pdb.yaml", infra.display()));
    assert_eq!(region["region"]["startLine"], 13);
    assert!(results.iter().all(|r| r["kind"] == "fail" || r["kind"] == "open"), "no passes in the log");
    let rules = log["runs"][0]["tool"]["driver"]["rules"].as_array().expect("rules");
    assert!(rules.iter().any(|r| r["id"] == "pdb" && r["shortDescription"]["text"] == "PDB minAvailable"));
    assert!(text(&out.stderr).contains("FAIL [production] pdb:"), "the text goes to stderr");
}

/// GitHub shows 10 annotations per step: no more are written, and one
/// notice counts the rest.
#[test]
fn github_annotations_stop_at_ten_and_count_the_rest() {
    let (_dir, infra) = infra_copy();
    // Every object of the overlay in the wrong namespace: more than 10 failures.
    edit(&infra, "kustomize/overlays/production/kustomization.yaml", "namespace: gl-cbam\n", "namespace: gl-cbam-x\n");
    let report = tempfile::tempdir().expect("temp dir");
    let infra_arg = infra.to_str().expect("utf-8");
    let out =
        conformance(&["production", "--tier", "static", "--infra", infra_arg, "--format", "github"], report.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let failed = stdout.lines().filter(|l| l.starts_with("FAIL ")).count();
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::error ")).collect();
    assert!(failed > 10, "the mutation makes more than 10 failures: {stdout}");
    assert_eq!(errors.len(), 10, "{stdout}");
    assert!(errors.iter().all(|l| l.contains(",line=")), "each at a line: {errors:#?}");
    let notice = stdout.lines().find(|l| l.starts_with("::notice ")).expect("a notice for the rest");
    assert!(notice.contains(&format!("{} more findings", failed - 10)), "{notice}");
}

#[test]
fn json_and_sarif_on_stdout_are_each_alone() {
    let report = tempfile::tempdir().expect("temp dir");
    let out = conformance(&["dev", "--tier", "static", "--format", "json", "--format", "github"], report.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("give either alone"), "{}", text(&out.stderr));
}

/// `conformance cluster` has its own parser; a provider it cannot manage is
/// an error the caller can fix (exit 2), named, before any engine is asked.
#[rstest]
#[case(&["cluster", "down", "--cluster", "existing"], "an existing cluster is yours")]
#[case(&["cluster", "sideways"], "unrecognized subcommand")]
fn the_cluster_command_refuses_what_it_cannot_manage(#[case] args: &[&str], #[case] said: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance")).current_dir(root()).args(args).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(said), "stderr:\n{}", text(&out.stderr));
}
