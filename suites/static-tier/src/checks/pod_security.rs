//! The Pod Security Standards "restricted" profile (which includes
//! "baseline"), evaluated on the Deployment's pod template the way the
//! PodSecurity admission controller evaluates a pod.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, SecurityContext};

use crate::context::Context;
use cbam_model::outcome::Recorder;

/// Volume types "restricted" allows.
const ALLOWED_VOLUMES: [&str; 8] =
    ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];

fn containers(pod: &PodSpec) -> impl Iterator<Item = &Container> {
    pod.init_containers.iter().flatten().chain(pod.containers.iter())
}

/// Violations of one container, as (field, found) pairs.
fn container_violations(pod: Option<&PodSecurityContext>, c: &Container) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let sc: Option<&SecurityContext> = c.security_context.as_ref();
    let field = |f: &str| format!("containers[{}].securityContext.{f}", c.name);
    if sc.and_then(|s| s.privileged) == Some(true) {
        out.push((field("privileged"), "true".to_owned()));
    }
    if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
        out.push((field("allowPrivilegeEscalation"), "not false".to_owned()));
    }
    let non_root = sc.and_then(|s| s.run_as_non_root).or(pod.and_then(|p| p.run_as_non_root));
    if non_root != Some(true) {
        out.push((field("runAsNonRoot"), "not true (container or pod)".to_owned()));
    }
    if sc.and_then(|s| s.run_as_user).or(pod.and_then(|p| p.run_as_user)) == Some(0) {
        out.push((field("runAsUser"), "0".to_owned()));
    }
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(pod.and_then(|p| p.seccomp_profile.as_ref()))
        .map(|p| p.type_.as_str());
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        out.push((field("seccompProfile.type"), seccomp.unwrap_or("unset").to_owned()));
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let dropped = caps.and_then(|k| k.drop.clone()).unwrap_or_default();
    if !dropped.iter().any(|d| d == "ALL") {
        out.push((field("capabilities.drop"), format!("[{}]", dropped.join(","))));
    }
    let added: Vec<String> =
        caps.and_then(|k| k.add.clone()).unwrap_or_default().into_iter().filter(|a| a != "NET_BIND_SERVICE").collect();
    if !added.is_empty() {
        out.push((field("capabilities.add"), format!("[{}]", added.join(","))));
    }
    if sc.and_then(|s| s.proc_mount.as_deref()).is_some_and(|m| m != "Default") {
        out.push((field("procMount"), "not Default".to_owned()));
    }
    if sc.and_then(|s| s.windows_options.as_ref()).and_then(|w| w.host_process) == Some(true) {
        out.push((field("windowsOptions.hostProcess"), "true".to_owned()));
    }
    let host_ports: Vec<String> =
        c.ports.iter().flatten().filter_map(|p| p.host_port.filter(|h| *h != 0)).map(|h| h.to_string()).collect();
    if !host_ports.is_empty() {
        out.push((format!("containers[{}].ports[].hostPort", c.name), host_ports.join(",")));
    }
    out
}

pub(crate) fn restricted(cx: &Context, r: &mut Recorder) {
    let object = format!("{} pod template", cx.deployment_label());
    let Some(pod) = cx.pod_spec() else {
        return r.missing(&object, "pod spec");
    };
    let mut violations: Vec<(String, String)> = Vec::new();
    for (flag, value) in [("hostNetwork", pod.host_network), ("hostPID", pod.host_pid), ("hostIPC", pod.host_ipc)] {
        if value == Some(true) {
            violations.push((format!("spec.{flag}"), "true".to_owned()));
        }
    }
    for volume in pod.volumes.iter().flatten() {
        let value = serde_json::to_value(volume).unwrap_or_default();
        let kinds: Vec<&String> =
            value.as_object().into_iter().flat_map(|o| o.keys()).filter(|k| *k != "name").collect();
        for kind in kinds.into_iter().filter(|k| !ALLOWED_VOLUMES.contains(&k.as_str())) {
            violations.push((format!("spec.volumes[{}]", volume.name), format!("type {kind}")));
        }
    }
    let pod_sc = pod.security_context.as_ref();
    for sysctl in pod_sc.and_then(|s| s.sysctls.as_ref()).into_iter().flatten() {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            violations.push(("spec.securityContext.sysctls".to_owned(), sysctl.name.clone()));
        }
    }
    for container in containers(pod) {
        violations.extend(container_violations(pod_sc, container));
    }
    if violations.is_empty() {
        r.record(&object, "Pod Security Standard", "restricted", "restricted", true);
    }
    for (field, found) in violations {
        r.record(&object, &field, "allowed by restricted", found, false);
    }
}
