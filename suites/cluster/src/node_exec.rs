//! Everything the harness runs inside a kind node (the kit's image built by
//! kind's recipe, or kind's published `kindest/node`; serving images runs on
//! the kit's nodes too) goes through here: the programs by name, and the
//! shell scripts they are given. Each program and each command of each script
//! must come with kind's base image: `tests/node_tools.rs` holds them to the
//! package list of the pinned kind module's Dockerfile (a node without
//! `wget`, say, would otherwise fail only on a user's machine).

use std::path::Path;

use crate::docker::{self, DockerError};

/// Declares `NodeProgram`, its names and `ALL` from one list, so that no
/// program can be run without the tools test seeing it.
macro_rules! node_programs {
    ($($program:ident => $name:literal),+ $(,)?) => {
        /// A program the harness runs in a node.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum NodeProgram {
            $($program),+
        }

        impl NodeProgram {
            /// Every program, for the tools test.
            pub const ALL: &[NodeProgram] = &[$(NodeProgram::$program),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(NodeProgram::$program => $name),+
                }
            }
        }
    };
}

node_programs! {
    Sh => "sh",
    Bash => "bash",
    Systemctl => "systemctl",
    Timeout => "timeout",
    Sysctl => "sysctl",
}

/// Clears the served archives of the last load ($1: the directory).
pub const CLEAR_ARCHIVES: &str = "mkdir -p \"$1\" && rm -f \"$1\"/image*.tar";

/// Serves image archives to the node's containerd (ci/kit/serve-image.sh).
pub const SERVE_IMAGE: &str = include_str!("../../../ci/kit/serve-image.sh");

/// One HTTP/1.0 request for the kubelet's /healthz on its default port; the
/// answer, headers and body ("ok" when healthy), on stdout (bash's
/// /dev/tcp: a node has no HTTP client that every image ships).
pub const KUBELET_HEALTHZ: &str =
    "exec 3<>/dev/tcp/127.0.0.1/10248 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";

/// Every script given to a node's shell, by name: what the tools test reads.
pub const SCRIPTS: [(&str, &str); 3] =
    [("CLEAR_ARCHIVES", CLEAR_ARCHIVES), ("serve-image.sh", SERVE_IMAGE), ("KUBELET_HEALTHZ", KUBELET_HEALTHZ)];

/// `docker exec CONTAINER PROGRAM ARGS...`: stdout.
pub async fn run(container: &str, program: NodeProgram, args: &[&str]) -> Result<String, DockerError> {
    let mut argv = vec!["exec", container, program.name()];
    argv.extend_from_slice(args);
    docker::docker(&argv).await
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
    run(container, NodeProgram::Sh, &["-c", CLEAR_ARCHIVES, "clear", SERVE_DIR]).await?;
    let names: Vec<String> = (0..archives.len()).map(|i| format!("image-{i}.tar")).collect();
    let copies = archives.iter().zip(&names).map(|(a, n)| (*a, n.as_str()));
    for (source, name) in copies.chain([(registry, "oci-registry")]) {
        let target = format!("{container}:{SERVE_DIR}/{name}");
        docker::docker(&["cp", &source.to_string_lossy(), &target]).await?;
    }
    let args = ["-c", SERVE_IMAGE, "serve-image", SERVE_DIR, &timeout.to_string()];
    run(container, NodeProgram::Sh, &args).await.map(drop)
}
