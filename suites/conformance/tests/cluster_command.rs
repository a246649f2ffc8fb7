//! `conformance cluster up|status|load|down` on a real kit cluster and a
//! real kind cluster (one agent or worker each): up passes the readiness
//! gate and leaves the cluster running with an owner-only kubeconfig
//! pointing at 127.0.0.1; status sees its nodes Ready; load serves the
//! application image to every node; down leaves no container, volume,
//! network, volume directory or kubeconfig behind. Needs the engine, the kit
//! and `just image` (`just cluster-suites` builds them first).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cbam_conformance::cluster_command::kubeconfig_path;

const NAME: &str = "cbam-cli-test";
/// kind's cluster: its own name, so both tests may run at once.
const KIND_NAME: &str = "cbam-cli-kind";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cluster(args: &[&str]) -> Output {
    command(&["--name", NAME], args)
}

fn kind_cluster(args: &[&str]) -> Output {
    command(&["--name", KIND_NAME, "--cluster", "kind"], args)
}

fn command(which: &[&str], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .current_dir(root())
        .arg("cluster")
        .args(args)
        .args(which)
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
struct Down(fn(&[&str]) -> Output);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = (self.0)(&["down"]);
    }
}

/// The kubeconfig `up` printed: owner only, the API on 127.0.0.1.
fn kubeconfig_written(up: &Output, name: &str) -> PathBuf {
    let path = kubeconfig_path(name);
    assert_eq!(String::from_utf8_lossy(&up.stdout).trim(), path.display().to_string(), "prints the kubeconfig");
    let mode = std::fs::metadata(&path).expect("kubeconfig written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the kubeconfig holds credentials: owner only");
    let kubeconfig = std::fs::read_to_string(&path).expect("kubeconfig");
    assert!(kubeconfig.contains("server: https://127.0.0.1:"), "{kubeconfig}");
    path
}

#[test]
fn up_status_load_down_leave_nothing_behind() {
    let _down = Down(cluster);
    let up = cluster(&["up", "--agents", "1"]);
    assert_eq!(up.status.code(), Some(0), "{}", said(&up));
    let path = kubeconfig_written(&up, NAME);

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

#[test]
fn kind_up_status_load_down_leave_nothing_behind() {
    let _down = Down(kind_cluster);
    let up = kind_cluster(&["up", "--agents", "1"]);
    assert_eq!(up.status.code(), Some(0), "{}", said(&up));
    let path = kubeconfig_written(&up, KIND_NAME);
    let storage = path.with_file_name(format!("{KIND_NAME}.storage"));
    assert!(storage.is_dir(), "the RWX volumes' directory {} is kept with the cluster", storage.display());

    let status = kind_cluster(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", said(&status));
    let listed = String::from_utf8_lossy(&status.stdout).into_owned();
    for node in [format!("node {KIND_NAME}-control-plane Ready"), format!("node {KIND_NAME}-worker Ready")] {
        assert!(listed.contains(&node), "{node} missing: {}", said(&status));
    }

    let archive = root().join("target/image/cbam-api.tar");
    let load = kind_cluster(&["load", &archive.to_string_lossy()]);
    assert_eq!(load.status.code(), Some(0), "{}", said(&load));
    assert!(String::from_utf8_lossy(&load.stderr).contains("to 2 nodes"), "{}", said(&load));

    let down = kind_cluster(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", said(&down));
    let filter = format!("label=io.x-k8s.kind.cluster={KIND_NAME}");
    let out = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().expect("docker");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "", "kind node containers left behind");
    assert!(!path.exists(), "the kubeconfig is removed with the cluster");
    assert!(!storage.exists(), "the RWX volumes' directory is removed with the cluster");
}
