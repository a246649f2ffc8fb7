//! The Docker CLI, for what testcontainers does not manage: labelled
//! networks and volumes, image presence, serving image archives to nodes.

use std::path::Path;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("run docker {args}")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run docker {args}: exit {code:?}: {stderr}")]
    Failed { args: String, code: Option<i32>, stderr: String },
}

/// Runs `docker ARGS`, returning stdout.
pub async fn docker(args: &[&str]) -> Result<String, DockerError> {
    let joined = args.join(" ");
    let out = Command::new("docker")
        .args(args)
        .output()
        .await
        .map_err(|source| DockerError::Spawn { args: joined.clone(), source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(DockerError::Failed {
            args: joined,
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Whether an engine answers (the gate for everything live).
pub async fn engine_reachable() -> bool {
    docker(&["info", "--format", "{{.ServerVersion}}"]).await.is_ok()
}

pub async fn image_present(reference: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", reference]).await.is_ok()
}

/// The value of an image's label, if it has the label.
pub async fn image_label(reference: &str, label: &str) -> Result<Option<String>, DockerError> {
    let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
    let value = docker(&["image", "inspect", "--format", &format, reference]).await?;
    Ok(Some(value).filter(|v| !v.is_empty() && v != "<no value>"))
}

/// Everything Docker holds for the containers, networks and volumes carrying
/// `label` (anonymous volumes of those containers included), as
/// `kind id-or-name` lines: what removing them must leave behind nothing of.
/// Scoped by label so that other clusters coming and going meanwhile (CI runs
/// several side by side) do not count.
pub async fn owned(label: &str) -> Result<std::collections::BTreeSet<String>, DockerError> {
    let filter = format!("label={label}");
    let mut found = std::collections::BTreeSet::new();
    for id in docker(&["ps", "-aq", "--no-trunc", "--filter", &filter]).await?.lines() {
        found.insert(format!("container {id}"));
        let mounts = docker(&["inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", id]).await?;
        found.extend(mounts.split_whitespace().map(|v| format!("volume {v}")));
    }
    for kind in ["network", "volume"] {
        for name in docker(&[kind, "ls", "-q", "--filter", &filter]).await?.lines() {
            found.insert(format!("{kind} {name}"));
        }
    }
    Ok(found)
}

/// Which of `owned` Docker still holds.
pub async fn still_present(owned: &std::collections::BTreeSet<String>) -> Result<Vec<String>, DockerError> {
    let lines = |s: String| s.lines().map(str::to_owned).collect::<Vec<_>>();
    let containers = lines(docker(&["ps", "-aq", "--no-trunc"]).await?);
    let networks = lines(docker(&["network", "ls", "-q"]).await?);
    let volumes = lines(docker(&["volume", "ls", "-q"]).await?);
    Ok(owned
        .iter()
        .filter(|o| match o.split_once(' ') {
            Some(("container", id)) => containers.iter().any(|c| c == id),
            Some(("network", id)) => networks.iter().any(|n| n == id),
            Some(("volume", id)) => volumes.iter().any(|v| v == id),
            _ => false,
        })
        .cloned()
        .collect())
}

/// Where a node keeps the archives it serves and the registry serving them.
const SERVE_DIR: &str = "/var/lib/cbam-registry";

/// Serves image archives (the application's, the harness's tool image) to a
/// node's containerd as one registry: the archives and the registry binary
/// copied into the node (the last load's archives removed first), then
/// ci/kit/serve-image.sh run there (the one place that knows how;
/// `conformance cluster load` runs it too).
pub async fn serve_image(
    container: &str,
    archives: &[&Path],
    registry: &Path,
    timeout: u64,
) -> Result<(), DockerError> {
    use crate::node_exec::{self, NodeProgram};
    node_exec::run(container, NodeProgram::Sh, &["-c", node_exec::CLEAR_ARCHIVES, "clear", SERVE_DIR]).await?;
    let names: Vec<String> = (0..archives.len()).map(|i| format!("image-{i}.tar")).collect();
    let copies = archives.iter().zip(&names).map(|(a, n)| (*a, n.as_str()));
    for (source, name) in copies.chain([(registry, "oci-registry")]) {
        let target = format!("{container}:{SERVE_DIR}/{name}");
        docker(&["cp", &source.to_string_lossy(), &target]).await?;
    }
    let args = ["-c", node_exec::SERVE_IMAGE, "serve-image", SERVE_DIR, &timeout.to_string()];
    node_exec::run(container, NodeProgram::Sh, &args).await.map(drop)
}
