//! k3s's container interface, the part the provider uses: the `server` and
//! `agent` command lines, `K3S_TOKEN` / `K3S_URL`, where the kubeconfig and
//! the join token are written, and the log lines that say a node is ready.
//! The kit's node (ci/kit/node/cbam-node) speaks it, so the same provider
//! code runs an upstream `rancher/k3s` image where a registry has one.

use std::io::Read;

/// The admin kubeconfig on a server (server URL https://127.0.0.1:6443).
pub const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
/// The server's full join token, `K10<sha256 of its CA>::server:<password>`:
/// what an agent needs to check the server before it sends anything secret.
pub const TOKEN: &str = "/var/lib/rancher/k3s/server/token";
/// What a server logs once it serves (k3d waits for the same line).
pub const SERVER_READY: &str = "k3s is up and running";
/// What an agent logs once its kubelet registered the node (as k3d).
pub const AGENT_READY: &str = "Successfully registered node";
/// The API port agents join.
pub const API_PORT: u16 = 6443;

/// k3s's packaged components the harness installs itself (ci/addons): an
/// upstream server must not bring its own (the kit bundles none of them).
const DISABLED: &str = "traefik,servicelb,metrics-server,local-storage";

/// Components whose arguments k3s passes on (`--COMPONENT-arg`), and whether
/// an agent runs them too (an agent refuses the server's flags).
const COMPONENTS: [(&str, bool); 6] = [
    ("etcd", false),
    ("kube-apiserver", false),
    ("kube-controller-manager", false),
    ("kube-scheduler", false),
    ("kubelet", true),
    ("kube-proxy", true),
];

#[derive(Debug, thiserror::Error)]
pub enum K3sError {
    #[error(
        "k3s passes no arguments to {0} (it has --COMPONENT-arg for etcd, kube-apiserver, \
         kube-controller-manager, kube-scheduler, kubelet and kube-proxy)"
    )]
    Component(String),
    #[error("make a join password")]
    Random(#[source] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }

    /// The log line that says a node of this role is ready.
    pub fn ready_line(self) -> &'static str {
        match self {
            Role::Server => SERVER_READY,
            Role::Agent => AGENT_READY,
        }
    }
}

/// The node's command line: the role, then k3s's flags. `server_name`: the
/// server's name on the cluster network (agents reach it by it, so its
/// certificate names it). `component_args`: (component, flags) pairs, each
/// flag passed as `--COMPONENT-arg=FLAG`.
pub fn command(role: Role, server_name: &str, component_args: &[(String, String)]) -> Result<Vec<String>, K3sError> {
    let mut args = vec![role.as_str().to_owned()];
    if role == Role::Server {
        args.push(format!("--disable={DISABLED}"));
        args.push("--tls-san=127.0.0.1".into());
        args.push(format!("--tls-san={server_name}"));
    }
    // The ingress controller runs on the server (host ports 80/443, which
    // the provider publishes): ci/addons select it by this label.
    args.push(format!("--node-label=cbam.io/role={}", role.as_str()));
    for (component, flags) in component_args {
        let on_agents = COMPONENTS
            .iter()
            .find(|(name, _)| name == component)
            .map(|(_, on_agents)| *on_agents)
            .ok_or_else(|| K3sError::Component(component.clone()))?;
        if role == Role::Agent && !on_agents {
            continue;
        }
        args.extend(flags.split_whitespace().map(|flag| format!("--{component}-arg={flag}")));
    }
    Ok(args)
}

/// The URL an agent joins.
pub fn server_url(server_name: &str) -> String {
    format!("https://{server_name}:{API_PORT}")
}

/// A new join password for a server's `K3S_TOKEN`: 32 random bytes, hex.
pub fn new_password() -> Result<String, K3sError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(K3sError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `token` is a full token, one that names the server's CA.
pub fn is_full_token(token: &str) -> bool {
    token.strip_prefix("K10").and_then(|rest| rest.split_once("::")).is_some_and(|(hash, credentials)| {
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && credentials.contains(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_disables_what_the_harness_installs_and_names_itself() {
        let args = command(Role::Server, "c-server", &[]).expect("command");
        assert_eq!(
            args,
            [
                "server",
                "--disable=traefik,servicelb,metrics-server,local-storage",
                "--tls-san=127.0.0.1",
                "--tls-san=c-server",
                "--node-label=cbam.io/role=server"
            ]
        );
        assert_eq!(
            command(Role::Agent, "c-server", &[]).expect("command"),
            ["agent", "--node-label=cbam.io/role=agent"]
        );
    }

    #[test]
    fn component_arguments_go_where_the_component_runs() {
        let given = vec![("etcd".to_owned(), "--no-such-flag".to_owned()), ("kube-proxy".into(), "--v=4 --x=y".into())];
        let server = command(Role::Server, "s", &given).expect("server");
        assert!(server.ends_with(&[
            "--etcd-arg=--no-such-flag".to_owned(),
            "--kube-proxy-arg=--v=4".to_owned(),
            "--kube-proxy-arg=--x=y".to_owned()
        ]));
        let agent = command(Role::Agent, "s", &given).expect("agent");
        assert!(!agent.iter().any(|a| a.starts_with("--etcd-arg")), "an agent refuses server flags: {agent:?}");
        assert!(agent.contains(&"--kube-proxy-arg=--v=4".to_owned()));
        let refused = command(Role::Server, "s", &[("containerd".into(), "--x".into())]).expect_err("no such flag");
        assert!(refused.to_string().contains("no arguments to containerd"), "{refused}");
    }

    #[test]
    fn the_kit_node_speaks_the_same_interface() {
        let node = include_str!("../../../ci/kit/node/cbam-node");
        for said in [SERVER_READY, AGENT_READY, "/etc/rancher/k3s/k3s.yaml", "/var/lib/rancher/k3s/agent/images"] {
            assert!(node.contains(said), "ci/kit/node/cbam-node lacks {said:?}");
        }
        assert!(node.contains("server_data=/var/lib/rancher/k3s/server") && TOKEN.ends_with("/server/token"));
        for (component, _) in COMPONENTS {
            assert!(node.contains(&format!("--{component}-arg=")), "cbam-node takes no --{component}-arg");
        }
    }

    #[test]
    fn a_full_token_names_the_ca() {
        let hash = "a".repeat(64);
        assert!(is_full_token(&format!("K10{hash}::server:secret")));
        assert!(!is_full_token("secret"), "a bare password names no CA");
        assert!(!is_full_token(&format!("K10{}::server:secret", "a".repeat(63))));
        assert!(!is_full_token(&format!("K10{hash}::nocolon")));
        let password = new_password().expect("random");
        assert_eq!(password.len(), 64);
        assert_ne!(password, new_password().expect("random"), "each cluster its own");
        assert_eq!(server_url("c-server"), "https://c-server:6443");
    }
}
