//! The kit node's join objects and its wait (issue 28), through the same
//! programs the node runs (`ci/kit/node/cbam-join`, `ci/kit/node/wait.sh`),
//! with bash and jq on this machine as in the node image. No cluster.
//!
//! A bootstrap token id is 6 hex characters of a sha256: all digits about
//! one start in sixteen, and a YAML parser reads "513048", "012345" or
//! "1e5234" as a number, which the API server refuses for a string field.
//! Every token shape must reach the API server as a string.
//!
//! `CBAM_JOIN_EMITTER` runs the token-shape test on another emitter (the
//! same interface): that is how it was shown to fail on the node script
//! of 34c116c, whose YAML heredoc it reproduces (docs/measurements.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use serde_norway::Value;
use token_shapes::{all_digits, bootstrap_token, numeric_looking_passwords, passwords};

mod token_shapes;

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ci/kit/node")
}

fn emitter() -> PathBuf {
    std::env::var_os("CBAM_JOIN_EMITTER").map_or_else(|| node_dir().join("cbam-join"), PathBuf::from)
}

/// Runs `PROGRAM ARGS` with STDIN; the output, whatever its status.
fn run(program: &PathBuf, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("bash")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {}: {e}", program.display()));
    // Written beside the reading: thousands of lines fill both pipes.
    let mut input = child.stdin.take().expect("stdin piped");
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let out = child.wait_with_output().expect("failed to wait for the emitter");
    writer.join().expect("the stdin writer").expect("failed to write stdin");
    out
}

/// The objects in the emitter's output, a YAML stream (JSON is YAML), read
/// by a YAML parser as kubectl reads a file: Lists flattened.
fn objects_of(stream: &str) -> Result<Vec<Value>, serde_norway::Error> {
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(stream) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        match value["items"].as_sequence() {
            Some(items) if value["kind"].as_str() == Some("List") => objects.extend(items.iter().cloned()),
            _ if value.is_null() => {}
            _ => objects.push(value),
        }
    }
    Ok(objects)
}

/// What the emitter wrote, checked: per token (in order) a Secret whose
/// fields are strings equal to the token's parts, and cluster-info with the
/// CA and URL. One message per thing wrong.
fn check_objects(stream: &str, tokens: &[(String, String)], ca_base64: &str, url: &str) -> Vec<String> {
    let objects = match objects_of(stream) {
        Ok(objects) => objects,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let of_kind = |kind: &str| objects.iter().filter(move |o| o["kind"].as_str() == Some(kind)).collect::<Vec<_>>();
    let (secrets, cluster_infos) = (of_kind("Secret"), of_kind("ConfigMap"));
    if secrets.len() != tokens.len() || cluster_infos.len() != tokens.len() {
        return vec![format!(
            "{} Secrets and {} ConfigMaps for {} tokens",
            secrets.len(),
            cluster_infos.len(),
            tokens.len()
        )];
    }
    let mut wrong = Vec::new();
    for ((secret_object, cluster_info), (id, secret)) in secrets.iter().zip(&cluster_infos).zip(tokens) {
        let data = &secret_object["stringData"];
        let expected = [
            ("token-id", id.as_str()),
            ("token-secret", secret.as_str()),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
            ("auth-extra-groups", "system:bootstrappers:cbam-node"),
        ];
        for (field, want) in expected {
            match &data[field] {
                Value::String(found) if found == want => {}
                found => wrong.push(format!("token {id}: stringData.{field} is {found:?}, not the string {want:?}")),
            }
        }
        let name = format!("bootstrap-token-{id}");
        if secret_object["metadata"]["name"].as_str() != Some(name.as_str()) {
            wrong.push(format!("token {id}: Secret named {:?}", secret_object["metadata"]["name"]));
        }
        let kubeconfig: Value = cluster_info["data"]["kubeconfig"]
            .as_str()
            .and_then(|text| serde_norway::from_str(text).ok())
            .unwrap_or(Value::Null);
        let cluster = &kubeconfig["clusters"][0]["cluster"];
        if cluster["certificate-authority-data"].as_str() != Some(ca_base64) || cluster["server"].as_str() != Some(url)
        {
            wrong.push(format!("token {id}: cluster-info's kubeconfig is {kubeconfig:?}"));
        }
    }
    wrong
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBBQUAMA0xCzAJBgNVBAYTAkFV\n-----END CERTIFICATE-----\n";
const URL: &str = "https://10.89.0.2:6443";

fn ca_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("failed to create a temporary file");
    file.write_all(CA_PEM.as_bytes()).expect("failed to write the CA");
    file
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn the_node_derives_the_same_token() {
    let mut sample: Vec<String> = passwords(20).collect();
    sample.extend(numeric_looking_passwords().into_iter().map(|(_, p)| p));
    // Hostile passwords a user may set as K3S_TOKEN.
    sample.extend(["true", "0", "1e5", "null", "a b", "it's \"quoted\"", "ünï", "--flag", "x:y::z"].map(String::from));
    let program = node_dir().join("cbam-join");
    for password in sample {
        let out = run(&program, &["token"], &password);
        assert!(out.status.success(), "cbam-join token failed: {}", String::from_utf8_lossy(&out.stderr));
        let (id, secret) = bootstrap_token(&password);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), format!("{id}.{secret}"), "password {password:?}");
    }
}

/// 4,000 tokens of the node's kind, and every numeric-looking id shape,
/// through one run of the emitter: each stays a string.
#[test]
fn every_token_shape_stays_a_string() {
    let special = numeric_looking_passwords();
    let mut tokens: Vec<(String, String)> = passwords(4_000).map(|p| bootstrap_token(&p)).collect();
    tokens.extend(special.iter().map(|(_, p)| bootstrap_token(p)));
    let all_digit_ids = tokens.iter().filter(|(id, _)| all_digits(id)).count();
    assert!(all_digit_ids >= 200, "the sample has {all_digit_ids} all-digit ids: expected about 1 in 16");
    let stdin: String = tokens.iter().map(|(id, secret)| format!("{id}.{secret}\n")).collect();
    let ca = ca_file();
    let ca_path = ca.path().to_str().expect("a UTF-8 temporary path");
    let out = run(&emitter(), &["objects", ca_path, URL], &stdin);
    assert!(out.status.success(), "the emitter failed: {}", String::from_utf8_lossy(&out.stderr));
    let wrong = check_objects(&String::from_utf8_lossy(&out.stdout), &tokens, &base64(CA_PEM.as_bytes()), URL);
    assert!(
        wrong.is_empty(),
        "{} of {} tokens emitted wrong ({all_digit_ids} all-digit ids; shapes: {:?}); first: {}",
        wrong.len(),
        tokens.len(),
        special.iter().map(|(shape, p)| format!("{shape} {}", bootstrap_token(p).0)).collect::<Vec<_>>(),
        wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
    );
}

/// The check itself can fail: YAML text with the id pasted in, as the node
/// wrote it before, is caught for an all-digit id.
#[test]
fn an_id_pasted_into_yaml_text_is_caught() {
    let (_, password) = &numeric_looking_passwords()[0];
    let (id, secret) = bootstrap_token(password);
    let ca = base64(CA_PEM.as_bytes());
    let pasted = serde_json::to_string(&serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": [
            {"kind": "Secret", "metadata": {"name": format!("bootstrap-token-{id}")},
             "stringData": {"token-id": "@ID@", "token-secret": secret,
                "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
                "auth-extra-groups": "system:bootstrappers:cbam-node"}},
            {"kind": "ConfigMap", "data": {"kubeconfig": serde_json::json!({"clusters": [{"cluster": {
                "certificate-authority-data": ca, "server": URL}}]}).to_string()}}]
    }))
    .expect("JSON")
    // The defect, reproduced on purpose: the value pasted in unquoted.
    .replace("\"@ID@\"", &id);
    let wrong = check_objects(&pasted, &[(id.clone(), secret)], &ca, URL);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].contains("stringData.token-id is Number"), "{wrong:?}");
}

#[test]
fn a_line_that_is_not_a_token_is_refused() {
    let ca = ca_file();
    let ca_path = ca.path().to_str().expect("a UTF-8 temporary path");
    for bad in ["513048", "513048.short", "ABCDEF.0123456789abcdef", "abcdef.0123456789abcdef\" x"] {
        let out = run(&node_dir().join("cbam-join"), &["objects", ca_path, URL], &format!("{bad}\n"));
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a bootstrap token"), "{bad:?}");
    }
}

/// Runs wait.sh's until_ok on a stub command that answers each attempt
/// with the next of ANSWERS (`ok` succeeds, anything else is printed and
/// fails); returns (exit code, attempts made, what it said).
fn until_ok(limit_seconds: u32, answers: &[&str]) -> (Option<i32>, usize, String) {
    let dir = tempfile::tempdir().expect("failed to create a temporary directory");
    let script = r#"
        set -euo pipefail
        source "$1"; answers_file="$2"; attempts="$3"; limit="$4"
        fail() { echo "FATAL: $*"; exit 1; }
        hide() { printf '%s' "${1//hunter2/***}"; }
        components=""
        stub() {
          echo x >>"$attempts"
          local answer; answer="$(sed -n "$(wc -l <"$attempts")p" "$answers_file")"
          [ "$answer" = ok ] && return 0
          printf '%s\n' "${answer:-no answer}"; return 1
        }
        until_ok "the stub" "$limit" stub
        echo "done"
    "#;
    let answers_file = dir.path().join("answers");
    std::fs::write(&answers_file, answers.join("\n") + "\n").expect("failed to write answers");
    let attempts = dir.path().join("attempts");
    let out = Command::new("bash")
        .args(["-c", script, "until_ok"])
        .arg(node_dir().join("wait.sh"))
        .arg(&answers_file)
        .arg(&attempts)
        .arg(limit_seconds.to_string())
        .output()
        .expect("failed to run bash");
    let made = std::fs::read_to_string(&attempts).map_or(0, |t| t.lines().count());
    (out.status.code(), made, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The API server's refusal of the issue's object ends the wait at its
/// first attempt, with the message (a 600 s bound is never spent).
#[test]
fn a_refused_object_ends_the_wait_at_once() {
    let refusals = [
        "Error from server: failed to create typed patch object (kube-system/bootstrap-token-513048; /v1, Kind=Secret): .stringData.token-id: expected string, got &value.valueUnstructured{Value:513048}",
        "Error from server (Invalid): error when creating \"x.yaml\": Secret \"s\" is invalid: data[token-secret]: hunter2",
        "Error from server (BadRequest): error when creating \"x.yaml\": the object is malformed",
        "Error from server (Forbidden): secrets is forbidden: User \"u\" cannot create resource",
        "error: error validating \"x.yaml\": error validating data: kind not set",
        "error: unknown flag: --server-sidee",
    ];
    for refusal in refusals {
        let (code, attempts, said) = until_ok(600, &[refusal, "ok"]);
        assert_eq!((code, attempts), (Some(1), 1), "{refusal}: {said}");
        assert!(said.contains("refused while waiting for the stub (not retried)"), "{said}");
        assert!(!said.contains("hunter2"), "a secret reached the output: {said}");
    }
    let (_, _, said) = until_ok(600, &[refusals[0]]);
    assert!(said.contains("expected string, got"), "the API server's own words: {said}");
}

/// What can heal is retried until it does.
#[test]
fn what_can_heal_is_retried() {
    let healing = [
        "The connection to the server 10.89.0.2:6443 was refused - did you specify the right host or port?",
        "Error from server (NotFound): error when creating \"x.yaml\": namespaces \"kube-public\" not found",
        "Error from server (Forbidden): error when creating \"x.yaml\": secrets \"s\" is forbidden: not yet ready to handle request",
        "Error from server (Conflict): Operation cannot be fulfilled",
        "Error from server (InternalError): Internal error occurred: etcdserver: leader changed",
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
        "Error from server (TooManyRequests): the server has received too many requests",
    ];
    let (code, attempts, said) = until_ok(600, &[healing.as_slice(), &["ok"]].concat());
    assert_eq!((code, attempts), (Some(0), healing.len() + 1), "{said}");
    // ... but not past its bound, naming the last state seen.
    let (code, _, said) = until_ok(1, &[healing[0]; 8]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("timed out after 1s waiting for the stub: The connection"), "{said}");
}
