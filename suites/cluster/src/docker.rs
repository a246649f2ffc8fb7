//! The Docker CLI, for what testcontainers does not manage: labelled
//! networks and volumes, image presence, copying image archives into nodes.

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

/// Everything that exists: containers, networks, volumes (to prove a
/// teardown left the engine as it found it).
pub async fn inventory() -> Result<(Vec<String>, Vec<String>, Vec<String>), DockerError> {
    let lines = |s: String| s.lines().map(str::to_owned).collect::<Vec<_>>();
    Ok((
        lines(docker(&["ps", "-aq"]).await?),
        lines(docker(&["network", "ls", "-q"]).await?),
        lines(docker(&["volume", "ls", "-q"]).await?),
    ))
}

/// Copies an image archive into a node container and imports it into the
/// node's containerd (namespace k8s.io, where kubelet looks).
pub async fn import_image(container: &str, archive: &Path) -> Result<(), DockerError> {
    let source = archive.to_string_lossy();
    let target = format!("{container}:/root/import.tar");
    docker(&["cp", &source, &target]).await?;
    docker(&[
        "exec",
        container,
        "ctr",
        "--address",
        "/run/containerd/containerd.sock",
        "-n",
        "k8s.io",
        "images",
        "import",
        "/root/import.tar",
    ])
    .await?;
    docker(&["exec", container, "rm", "-f", "/root/import.tar"]).await.map(drop)
}
