//! The Docker CLI, for what testcontainers does not manage: labelled
//! networks and volumes, image presence.

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
