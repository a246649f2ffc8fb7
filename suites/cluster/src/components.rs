//! The supervised components of kit nodes (etcd, the API server, containerd,
//! kubelet, kube-proxy, ...) as each node's supervisor (ci/kit/node/cbam-node)
//! records them in the node's own filesystem, one line per component:
//! `running|exited|crash-looping SINCE QUICK_EXITS LAST_EXIT_CODE [WORDS]`
//! (WORDS: what the component's last run said of its reason). A crash
//! loop is a readiness-gate failure naming the node and the component, not a
//! restart loop nobody sees.

use std::time::Duration;

use crate::docker::{self, DockerError};
use crate::provider::KitCluster;
use crate::wait::Poll;

/// Where each node's supervisor writes (`NODE/COMPONENT` files).
const DIR: &str = "/var/lib/cbam/components";

/// How often the gate looks for a crash loop while its other waits run:
/// one `docker exec` per node each time, on a 2-core machine.
const INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running,
    Exited,
    CrashLooping,
}

/// One component of one node, as its supervisor last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub node: String,
    pub name: String,
    pub state: State,
    /// Unix seconds of the last start (running) or exit (otherwise).
    pub since: u64,
    /// Exits in a row, each soon after a start.
    pub quick_exits: u32,
    pub last_exit: i32,
    /// The error lines of its last run (else its last two lines).
    pub said: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("read the nodes' component states")]
    Docker(#[source] DockerError),
    #[error("read the nodes' component states: no clock reading")]
    NoClock,
    #[error("read the nodes' component states: unreadable line {0:?} (the node image and the harness disagree)")]
    Line(String),
    #[error("read the nodes' component states: the cluster has no nodes")]
    NoNodes,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{} on node {} is crash-looping: exited {} times in a row, each within {}s of starting (last exit code {}); it said: {}",
    .component.name, .component.node, .component.quick_exits, .window.as_secs(), .component.last_exit, .component.said
)]
pub struct CrashLoop {
    pub component: Component,
    pub window: Duration,
}

/// Parses `date +%s` followed by `grep -r . DIR` run inside `DIR`
/// (`./NODE/COMPONENT:STATE SINCE QUICK RC [WORDS]`): the node's clock and every
/// component line. A line that does not parse is an error: the node image
/// and the harness disagree.
pub fn parse(output: &str) -> Result<(u64, Vec<Component>), StateError> {
    let mut lines = output.lines();
    let now = lines.next().and_then(|l| l.trim().parse().ok()).ok_or(StateError::NoClock)?;
    let components = lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bad = || StateError::Line(line.to_owned());
            let (path, record) = line.split_once(':').ok_or_else(bad)?;
            let mut path = path.trim_start_matches("./").split('/');
            let (node, name) = (path.next().ok_or_else(bad)?, path.next().ok_or_else(bad)?);
            let fields: Vec<&str> = record.splitn(5, ' ').collect();
            let (state, since, quick, rc, said) = match fields[..] {
                [state, since, quick, rc] => (state, since, quick, rc, ""),
                [state, since, quick, rc, said] => (state, since, quick, rc, said),
                _ => return Err(bad()),
            };
            Ok(Component {
                node: node.to_owned(),
                name: name.to_owned(),
                state: match state {
                    "running" => State::Running,
                    "exited" => State::Exited,
                    "crash-looping" => State::CrashLooping,
                    _ => return Err(bad()),
                },
                since: since.parse().map_err(|_| bad())?,
                quick_exits: quick.parse().map_err(|_| bad())?,
                last_exit: rc.parse().map_err(|_| bad())?,
                said: said.trim().to_owned(),
            })
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    Ok((now, components))
}

/// Every node's components, and the clock of the last node read (the nodes
/// share the host's).
async fn read(cluster: &KitCluster) -> Result<(u64, Vec<Component>), StateError> {
    let nodes = cluster.nodes();
    if nodes.is_empty() {
        return Err(StateError::NoNodes);
    }
    let script = format!("date +%s; cd {DIR} && grep -r . . || true");
    let (mut now, mut all) = (0, Vec::new());
    for node in &nodes {
        let output =
            docker::docker(&["exec", &node.container, "sh", "-c", &script]).await.map_err(StateError::Docker)?;
        let (clock, components) = parse(&output)?;
        now = clock;
        all.extend(components);
    }
    Ok((now, all))
}

/// Steady: every node has recorded its components, each is running, and
/// one that exited soon after a start has run for a whole window since.
pub fn steady(nodes: &[&str], now: u64, components: &[Component], window: Duration) -> Poll<()> {
    if let Some(node) = nodes.iter().find(|n| !components.iter().any(|c| c.node == **n)) {
        return Poll::Pending(format!("node {node} has recorded no component (a node image older than the harness?)"));
    }
    let unsettled: Vec<String> = components
        .iter()
        .filter(|c| c.state != State::Running || (c.quick_exits > 0 && now.saturating_sub(c.since) < window.as_secs()))
        .map(|c| format!("{} on {}: {:?} after {} quick exits", c.name, c.node, c.state, c.quick_exits))
        .collect();
    if unsettled.is_empty() { Poll::Done(()) } else { Poll::Pending(unsettled.join("; ")) }
}

/// One poll of `steady` on the cluster.
pub async fn poll_steady(cluster: &KitCluster, window: Duration) -> Poll<()> {
    match read(cluster).await {
        Ok((now, components)) => {
            let nodes = cluster.nodes();
            let nodes: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            steady(&nodes, now, &components, window)
        }
        Err(e) => Poll::failed(cbam_error_chain::render(&e), &e),
    }
}

/// Returns the first crash loop any node records (polling until one does:
/// run it beside the gate's waits and stop it when they end).
pub async fn first_crash_loop(cluster: &KitCluster, window: Duration) -> CrashLoop {
    loop {
        if let Ok((_, components)) = read(cluster).await
            && let Some(component) = components.into_iter().find(|c| c.state == State::CrashLooping)
        {
            return CrashLoop { component, window };
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEN: &str =
        "1000\n./server/etcd:running 900 0 0\n./agent1/kube-proxy:crash-looping 998 3 1 unknown flag: --no-such-flag\n";

    #[test]
    fn reads_each_component_of_each_node() {
        let (now, components) = parse(SEEN).expect("parses");
        assert_eq!(now, 1000);
        assert_eq!(components.len(), 2);
        assert_eq!(components[1].node, "agent1");
        assert_eq!(components[1].name, "kube-proxy");
        assert_eq!(components[1].state, State::CrashLooping);
        assert_eq!((components[1].quick_exits, components[1].last_exit), (3, 1));
        assert_eq!(components[1].said, "unknown flag: --no-such-flag");
        assert!(parse("1000\n./server/etcd:sleeping 1 0 0\n").is_err(), "an unknown state is not guessed");
        assert!(parse("").is_err());
    }

    #[test]
    fn steady_wants_every_node_and_a_quiet_window_after_a_restart() {
        let window = Duration::from_secs(30);
        let (now, components) =
            parse("1000\n./server/etcd:running 900 0 0\n./server/kubelet:running 990 1 0\n").expect("parses");
        assert!(matches!(steady(&["server"], now, &components, window), Poll::Pending(s) if s.contains("kubelet")));
        assert!(matches!(steady(&["server"], now + 40, &components, window), Poll::Done(())));
        assert!(
            matches!(steady(&["server", "agent1"], now + 40, &components, window), Poll::Pending(s) if s.contains("agent1"))
        );
        let (now, exited) = parse("1000\n./server/etcd:exited 999 1 2\n").expect("parses");
        assert!(matches!(steady(&["server"], now, &exited, window), Poll::Pending(_)));
    }

    #[test]
    fn a_crash_loop_names_the_component_the_node_and_the_log() {
        let (_, components) = parse(SEEN).expect("parses");
        let said = CrashLoop { component: components[1].clone(), window: Duration::from_secs(30) }.to_string();
        assert!(said.starts_with("kube-proxy on node agent1 is crash-looping: exited 3 times"), "{said}");
        assert!(said.contains("last exit code 1") && said.contains("unknown flag"), "{said}");
    }
}
