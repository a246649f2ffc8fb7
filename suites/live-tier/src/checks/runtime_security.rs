//! `live-runtime-security`: the security context as the kernel enforces it
//! on the running app process, not as the manifests ask for it. For each
//! app pod a tool container in the app's PID namespace (actions/tool_container.rs)
//! prints the app's /proc/1/status and /proc/1/mounts; the identity,
//! capabilities, no_new_privs, seccomp mode and mounts read there are
//! compared with fixtures/workload.yaml's `security`, one fact each.

use std::collections::{BTreeMap, BTreeSet};

use crate::actions::tool_container;
use crate::app_pods::{app_pods, is_ready};
use crate::context::LiveContext;
use crate::traffic::prober_pod::PROBER;
use cbam_error_chain::render as chain;
use cbam_model::fixtures::Security;
use cbam_model::outcome::Recorder;

use cbam_prober::tool::MOUNTS_MARK;

/// What the kernel says of the app process.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Process {
    /// Real, effective, saved and filesystem IDs, as /proc lists them.
    pub(crate) uids: Vec<i64>,
    pub(crate) gids: Vec<i64>,
    pub(crate) groups: BTreeSet<i64>,
    /// Effective, permitted, ambient and bounding capability sets (hex
    /// masks): with every capability dropped, all four are empty; an added
    /// one shows in the bounding set even where a non-root process cannot
    /// use it.
    pub(crate) cap_eff: String,
    pub(crate) cap_bnd: String,
    pub(crate) cap_prm: String,
    pub(crate) cap_amb: String,
    pub(crate) no_new_privs: String,
    /// 0 disabled, 1 strict, 2 filter.
    pub(crate) seccomp: String,
    /// Mount point to whether it is mounted read-write.
    pub(crate) mounts: Vec<(String, bool)>,
}

/// Output of the tool that is not what it was to print.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcError {
    #[error("no /proc/1/mounts in the tool's output")]
    NoMounts,
    #[error("not a /proc/PID/status: {0}")]
    NotStatus(String),
    #[error("no mount in /proc/1/mounts")]
    NoMount,
}

/// Reads the tool's output: /proc/1/status, MOUNTS_MARK, /proc/1/mounts.
pub(crate) fn parse(text: &str) -> Result<Process, ProcError> {
    let (status, mounts) = text.split_once(MOUNTS_MARK).ok_or(ProcError::NoMounts)?;
    let mut p = Process::default();
    let ids = |v: &str| v.split_whitespace().filter_map(|n| n.parse().ok()).collect::<Vec<i64>>();
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match key {
            "Uid" => p.uids = ids(value),
            "Gid" => p.gids = ids(value),
            "Groups" => p.groups = ids(value).into_iter().collect(),
            "CapEff" => p.cap_eff = value.to_owned(),
            "CapPrm" => p.cap_prm = value.to_owned(),
            "CapAmb" => p.cap_amb = value.to_owned(),
            "CapBnd" => p.cap_bnd = value.to_owned(),
            "NoNewPrivs" => p.no_new_privs = value.to_owned(),
            "Seccomp" => p.seccomp = value.to_owned(),
            _ => {}
        }
    }
    if p.uids.len() != 4 || p.gids.len() != 4 || p.cap_eff.is_empty() || p.seccomp.is_empty() {
        return Err(ProcError::NotStatus(status.lines().take(3).collect::<Vec<_>>().join(" | ")));
    }
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, point, _, options, ..] = fields[..] {
            let writable = options.split(',').next() == Some("rw");
            // /proc/mounts escapes a space in a path as \040.
            p.mounts.push((point.replace("\\040", " "), writable));
        }
    }
    if p.mounts.is_empty() {
        return Err(ProcError::NoMount);
    }
    Ok(p)
}

/// No capability at all: an all-zero mask.
fn empty_set(mask: &str) -> bool {
    !mask.is_empty() && mask.chars().all(|c| c == '0')
}

fn ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}

/// Each documented fact against the process: (subject, expected, found, passed).
pub(crate) fn judge(s: &Security, p: &Process) -> Vec<(String, String, String, bool)> {
    let mut facts = Vec::new();
    let mut fact = |subject: &str, expected: String, found: String, passed: bool| {
        facts.push((subject.to_owned(), expected, found, passed));
    };
    let uid = [s.run_as_user, s.run_as_user];
    fact("real and effective UID", ids(&uid), ids(&p.uids[..2]), p.uids[..2] == uid);
    let gid = [s.run_as_group, s.run_as_group];
    fact("real and effective GID", ids(&gid), ids(&p.gids[..2]), p.gids[..2] == gid);
    let groups: BTreeSet<i64> = s.supplementary_groups.iter().copied().collect();
    fact(
        "supplementary groups",
        ids(&groups.iter().copied().collect::<Vec<_>>()),
        ids(&p.groups.iter().copied().collect::<Vec<_>>()),
        groups == p.groups,
    );
    let sets =
        [("effective", &p.cap_eff), ("permitted", &p.cap_prm), ("ambient", &p.cap_amb), ("bounding", &p.cap_bnd)];
    for (set, mask) in sets {
        fact(&format!("{set} capabilities"), "none (0000000000000000)".into(), mask.clone(), empty_set(mask));
    }
    fact("no_new_privs", "1".into(), p.no_new_privs.clone(), p.no_new_privs == "1");
    fact("seccomp mode", "2 (filter)".into(), p.seccomp.clone(), p.seccomp == "2");
    // The last mount of a point is the one the process sees.
    let seen: BTreeMap<&str, bool> = p.mounts.iter().map(|(point, rw)| (point.as_str(), *rw)).collect();
    let root = seen.get("/");
    fact(
        "root filesystem",
        "read-only".into(),
        root.map_or("not mounted".into(), |rw| if *rw { "read-write" } else { "read-only" }.into()),
        root == Some(&false),
    );
    let writable: BTreeSet<String> = seen
        .iter()
        .filter(|(point, rw)| **rw && **point != "/" && !s.runtime_mounts.iter().any(|r| r == *point))
        .map(|(point, _)| (*point).to_owned())
        .collect();
    let documented: BTreeSet<String> = s.writable_mounts.iter().cloned().collect();
    let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    fact("writable mounts (besides the runtime's own)", list(&documented), list(&writable), documented == writable);
    facts
}

/// The tool container's command: both files, the mark between them.
const COMMAND: [&str; 2] = [PROBER, "inspect"];

pub(crate) async fn runtime_security(cx: &LiveContext<'_>, r: &mut Recorder) {
    let label = cx.deployment_label();
    let pods = match app_pods(cx).await {
        Ok(p) => p,
        Err(e) => return r.record(&label, "app pods", "Ready pods to inspect", chain(&e), false),
    };
    let ready: Vec<String> = pods.iter().filter(|p| is_ready(p)).filter_map(|p| p.metadata.name.clone()).collect();
    if ready.is_empty() {
        return r.record(&label, "app pods", "Ready pods to inspect", "none", false);
    }
    for pod in &ready {
        let object = format!("Pod {}/{pod} container {}", cx.namespace(), cx.workload.container);
        let said = tool_container::run(cx, pod, "cbam-conformance-inspect", &COMMAND, cx.timeouts.rollout).await;
        // Every ToolError is the harness's tool failing, not the app.
        let text = match said {
            Ok(text) => text,
            Err(e) => {
                r.skip(&object, "the app process as the kernel sees it", "read by a tool container", chain(&e));
                continue;
            }
        };
        match parse(&text) {
            Ok(process) => {
                for (subject, expected, found, passed) in judge(&cx.workload.security, &process) {
                    r.record(&object, &subject, expected, found, passed);
                }
            }
            Err(reason) => {
                r.skip(&object, "the app process as the kernel sees it", "/proc/1/status and mounts", reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security() -> Security {
        Security {
            run_as_user: 10001,
            run_as_group: 10001,
            fs_group: 10001,
            run_as_non_root: true,
            read_only_root_filesystem: true,
            drop_capabilities: vec!["ALL".into()],
            seccomp_profile: "RuntimeDefault".into(),
            allow_privilege_escalation: false,
            supplementary_groups: vec![10001],
            writable_mounts: vec!["/app/data".into(), "/tmp".into()],
            runtime_mounts: vec!["/proc".into(), "/dev".into(), "/etc/hosts".into()],
        }
    }

    fn output(uid: &str, cap_eff: &str, root: &str) -> String {
        format!(
            "Name:\tcbam-api\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t10001\t10001\t10001\t10001\nGroups:\t10001 \n\
             NoNewPrivs:\t1\nSeccomp:\t2\nCapPrm:\t0000000000000000\nCapEff:\t{cap_eff}\nCapAmb:\t0000000000000000\n\
             CapBnd:\t0000000000000000\n\
             {MOUNTS_MARK}\noverlay / overlay {root},relatime,lowerdir=/a 0 0\nproc /proc proc rw,nosuid 0 0\n\
             tmpfs /dev tmpfs rw,nosuid 0 0\n/dev/vda /etc/hosts ext4 rw,relatime 0 0\n\
             /dev/vda /app/data ext4 rw,relatime 0 0\ntmpfs /tmp tmpfs rw 0 0\n"
        )
    }

    fn failed(text: &str) -> Vec<String> {
        let process = parse(text).expect("parses");
        judge(&security(), &process).into_iter().filter(|f| !f.3).map(|f| format!("{}: {}", f.0, f.2)).collect()
    }

    #[test]
    fn the_documented_process_passes_every_fact() {
        assert_eq!(failed(&output("10001", "0000000000000000", "ro")), Vec::<String>::new());
    }

    #[test]
    fn root_a_capability_and_a_writable_root_each_fail_their_fact() {
        assert_eq!(failed(&output("0", "0000000000000000", "ro")), ["real and effective UID: 0 0"]);
        assert_eq!(failed(&output("10001", "0000000000000400", "ro")), ["effective capabilities: 0000000000000400"]);
        assert_eq!(failed(&output("10001", "0000000000000000", "rw")), ["root filesystem: read-write"]);
    }

    #[test]
    fn an_undocumented_writable_mount_fails() {
        let text = format!("{}tmpfs /var/cache tmpfs rw 0 0\n", output("10001", "0000000000000000", "ro"));
        assert_eq!(failed(&text), ["writable mounts (besides the runtime's own): /app/data, /tmp, /var/cache"]);
    }

    #[test]
    fn the_last_mount_of_a_point_is_the_one_that_counts() {
        let remounted = format!("{}overlay / overlay rw 0 0\n", output("10001", "0000000000000000", "ro"));
        assert_eq!(failed(&remounted), ["root filesystem: read-write"]);
        let covered = format!(
            "{}tmpfs /var/cache tmpfs rw 0 0\ntmpfs /var/cache tmpfs ro 0 0\n",
            output("10001", "0000000000000000", "ro")
        );
        assert_eq!(failed(&covered), Vec::<String>::new());
    }

    #[test]
    fn output_that_is_not_proc_is_an_error_not_a_pass() {
        assert!(parse("sh: cat: Permission denied").is_err());
        assert!(parse(&format!("Name: x\n{MOUNTS_MARK}\n")).is_err());
    }
}
