//! `conformance cluster up|status|load|down` on a real kit cluster (one
//! agent): up passes the readiness gate and leaves the cluster running with
//! an owner-only kubeconfig pointing at 127.0.0.1; status sees its nodes
//! Ready; load serves the application image to every node; down leaves no
//! container, volume, network or kubeconfig behind. Needs the engine, the
//! kit and `just image` (`just cluster-suites` builds them first).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cbam_conformance::cluster_command::kubeconfig_path;

const NAME: &str = "cbam-cli-test";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cluster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .current_dir(root())
        .arg("cluster")
        .args(args)
        .args(["--name", NAME])
        .output()
        .expect("run conformance cluster")
}

fn said(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Containers, volumes and networks labelled with the test cluster's name.
fn leftovers() -> Vec<String> {
    let filter = format!("label=cbam.io/kit-cluster={NAME}");
    let mut found = Vec::new();
    for kind in [&["ps", "-aq"][..], &["volume", "ls", "-q"], &["network", "ls", "-q"]] {
        let out = Command::new("docker").args(kind).args(["--filter", &filter]).output().expect("docker");
        found.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned));
    }
    found
}

/// Removes the cluster whatever the test did.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = cluster(&["down"]);
    }
}

#[test]
fn up_status_load_down_leave_nothing_behind() {
    let _down = Down;
    let up = cluster(&["up", "--agents", "1"]);
    assert_eq!(up.status.code(), Some(0), "{}", said(&up));
    let path = kubeconfig_path(NAME);
    assert_eq!(String::from_utf8_lossy(&up.stdout).trim(), path.display().to_string(), "prints the kubeconfig");
    let mode = std::fs::metadata(&path).expect("kubeconfig written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the kubeconfig holds credentials: owner only");
    let kubeconfig = std::fs::read_to_string(&path).expect("kubeconfig");
    assert!(kubeconfig.contains("server: https://127.0.0.1:"), "{kubeconfig}");

    let status = cluster(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", said(&status));
    let listed = String::from_utf8_lossy(&status.stdout).into_owned();
    for node in ["node server Ready", "node agent1 Ready"] {
        assert!(listed.contains(node), "{node} missing: {}", said(&status));
    }

    let archive = root().join("target/image/cbam-api.tar");
    let load = cluster(&["load", &archive.to_string_lossy()]);
    assert_eq!(load.status.code(), Some(0), "{}", said(&load));
    assert!(String::from_utf8_lossy(&load.stderr).contains("to 2 nodes"), "{}", said(&load));

    let down = cluster(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", said(&down));
    assert_eq!(leftovers(), Vec::<String>::new(), "left behind");
    assert!(!path.exists(), "the kubeconfig is removed with the cluster");
}
