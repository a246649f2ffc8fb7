//! Renders an overlay with the real kustomize (or `kubectl kustomize`).

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("find kustomize: neither `kustomize` nor `kubectl` is on PATH (run `just tools`)")]
    NotFound,
    #[error("run {program} for {overlay}")]
    Spawn {
        program: String,
        overlay: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("render {overlay}: {program} exited with {status}: {stderr}")]
    Failed { program: String, overlay: PathBuf, status: std::process::ExitStatus, stderr: String },
    #[error("render {overlay}: output is not UTF-8")]
    NotUtf8 { overlay: PathBuf },
    #[error("write the wrapper kustomization as YAML")]
    WrapperYaml {
        #[source]
        source: serde_norway::Error,
    },
    #[error("write a wrapper kustomization for {overlay}'s build metadata")]
    Wrapper {
        overlay: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The wrapper kustomization, as kustomize reads it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Wrapper {
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<String>,
    build_metadata: [&'static str; 1],
}

/// A build with kustomize's origin annotations: the output, and the wrapper
/// directory its origin paths are relative to (removed when dropped).
#[derive(Debug)]
pub struct Annotated {
    pub yaml: String,
    pub wrapper: tempfile::TempDir,
}

/// How to call kustomize: the standalone binary, or kubectl's embedded copy.
#[derive(Debug, Clone)]
pub struct Kustomize {
    program: PathBuf,
    via_kubectl: bool,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

impl Kustomize {
    /// An explicit binary, else `kustomize` on PATH, else `kubectl kustomize`.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, RenderError> {
        if let Some(program) = explicit {
            let via_kubectl = program.file_name().is_some_and(|name| name == "kubectl");
            return Ok(Kustomize { program: program.to_owned(), via_kubectl });
        }
        if let Some(program) = on_path("kustomize") {
            return Ok(Kustomize { program, via_kubectl: false });
        }
        on_path("kubectl").map(|program| Kustomize { program, via_kubectl: true }).ok_or(RenderError::NotFound)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        if self.via_kubectl {
            command.arg("kustomize");
        } else {
            command.arg("build");
        }
        command
    }

    pub(crate) fn describe(&self) -> String {
        let name = self.program.display();
        if self.via_kubectl { format!("{name} kustomize") } else { format!("{name} build") }
    }

    /// The version string the tool reports, for the evidence.
    pub(crate) fn version(&self) -> String {
        let mut command = Command::new(&self.program);
        if self.via_kubectl {
            command.args(["version", "--client"]);
        } else {
            command.arg("version");
        }
        command
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().replace('\n', "; "))
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Builds `overlay` through a wrapper kustomization in a temporary
    /// directory that asks for origin annotations: the user's tree is never
    /// written, and the objects are the overlay's own (the wrapper adds no
    /// transformer).
    pub fn build_annotated(&self, overlay: &Path) -> Result<Annotated, RenderError> {
        self.build_annotated_many(&[overlay])
    }

    /// Builds every one of `overlays` in one kustomize process, through one
    /// wrapper kustomization listing them all (their objects side by side,
    /// each as its own build would give it; a caller tells them apart).
    pub fn build_annotated_many(&self, overlays: &[&Path]) -> Result<Annotated, RenderError> {
        let first = overlays.first().copied().unwrap_or(Path::new("."));
        let wrapper_error = |source| RenderError::Wrapper { overlay: first.to_owned(), source };
        let wrapper = tempfile::tempdir().map_err(wrapper_error)?;
        let from = wrapper.path().canonicalize().map_err(wrapper_error)?;
        // kustomize accepts only a relative path to a resource directory.
        let up = "../".repeat(from.components().count().saturating_sub(1));
        let mut resources = Vec::new();
        for overlay in overlays {
            let to = overlay
                .canonicalize()
                .map_err(|source| RenderError::Wrapper { overlay: overlay.to_path_buf(), source })?;
            let down = to.strip_prefix("/").unwrap_or(&to).display().to_string();
            resources.push(format!("{up}{down}"));
        }
        // Written as data: a path is a string whatever it looks like.
        let kustomization = Wrapper {
            api_version: "kustomize.config.k8s.io/v1beta1",
            kind: "Kustomization",
            resources,
            build_metadata: ["originAnnotations"],
        };
        let text = serde_norway::to_string(&kustomization).map_err(|source| RenderError::WrapperYaml { source })?;
        std::fs::write(wrapper.path().join("kustomization.yaml"), text).map_err(wrapper_error)?;
        let yaml = self.run(wrapper.path(), first)?;
        Ok(Annotated { yaml, wrapper })
    }

    pub fn build(&self, overlay: &Path) -> Result<String, RenderError> {
        self.run(overlay, overlay)
    }

    /// Runs the build of `dir`; errors name `overlay`.
    fn run(&self, dir: &Path, overlay: &Path) -> Result<String, RenderError> {
        let program = self.describe();
        let output = self.command().arg(dir).output().map_err(|source| RenderError::Spawn {
            program: program.clone(),
            overlay: overlay.to_owned(),
            source,
        })?;
        if !output.status.success() {
            return Err(RenderError::Failed {
                program,
                overlay: overlay.to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        String::from_utf8(output.stdout).map_err(|_| RenderError::NotUtf8 { overlay: overlay.to_owned() })
    }
}
