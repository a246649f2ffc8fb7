//! Smoke suite of the kit cluster: it needs a Docker engine and a built kit
//! (`just smoke` ensures both first) and fails, naming what is missing,
//! when either is absent: it never passes without a cluster.
//! One cluster for the whole suite: 1 server + 2 agents, then down.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cbam_cluster::docker;
use cbam_cluster::exposure;
use cbam_cluster::kit;
use cbam_cluster::provider::{
    ClusterError, KitCluster, KitOptions, LABEL, SYN_SENT_SECONDS, SYN_SENT_SYSCTL, registry_beside,
};
use cbam_cluster::readiness;
use cbam_cluster::timeouts::Timeouts;
use cbam_cluster::wait::{Poll, until};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;

mod kind_node_image;
mod token_shapes;

/// What a step of the suite failed with, shown as the test's failure.
type Failed = Box<dyn std::error::Error + Send + Sync>;

const NS: &str = "smoke";
const HOST: &str = "smoke.kit.test";
const MANAGER: &str = "cbam-conformance";

fn app_image() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/image/cbam-api.tar")
}

async fn apply<K>(client: &Client, ns: Option<&str>, value: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = value["metadata"]["name"].as_str().expect("named object").to_owned();
    let api: Api<K> = Api::namespaced(client.clone(), ns.unwrap_or(NS));
    api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&value)).await.expect("server-side apply");
}

/// A CA for the run and a certificate for HOST signed by it (PEM).
fn tls_for_host() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "cbam smoke CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec![HOST.to_owned()]).expect("leaf params");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn kit_cluster_smoke() {
    assert!(docker::engine_reachable().await, "no Docker engine answers: run `just engine` (ci/engine.sh) first");
    let image = kit::node_image().unwrap_or_else(|e| panic!("{e}"));
    assert!(docker::image_present(&image).await, "node image {image} is not loaded: run `just kit`");
    assert!(app_image().is_file(), "{} missing: run `just image`", app_image().display());
    let listening_before = exposure::listening();
    let t = Timeouts::default();
    let opts = KitOptions {
        name: "cbam-smoke".into(),
        agents: 2,
        image,
        timeouts: t,
        reuse: false,
        keep: false,
        component_args: Vec::new(),
    };

    let started = std::time::Instant::now();
    let cluster = KitCluster::up(&opts).await.expect("cluster up");
    readiness::gate(&cluster, &t).await.expect("readiness gate");
    eprintln!("smoke: cluster ready in {:.1} s", started.elapsed().as_secs_f64());
    let exposed = loopback_only(&cluster, &listening_before).await;
    let result = async {
        exercise(&cluster, &t).await?;
        impostor_refused(&cluster).await?;
        join_objects_accepted(&cluster).await?;
        refusals_end_waits(&cluster).await
    }
    .await;
    // What this cluster holds (other clusters may come and go meanwhile).
    let owned = docker::owned(&format!("{LABEL}={}", cluster.name)).await.expect("docker inventory");
    cluster.down().await.expect("cluster down");
    exposed.unwrap_or_else(|e| panic!("{e}"));
    let left = docker::still_present(&owned).await.expect("docker inventory");
    result.unwrap_or_else(|e| panic!("{e}"));
    assert!(owned.iter().any(|o| o.starts_with("volume ")), "the inventory saw no volume: {owned:?}");
    assert!(left.is_empty(), "cluster down must remove its containers, networks and volumes; left: {left:?}");
}

/// Nothing the cluster publishes, and nothing that started listening on the
/// host since it came up, is reachable beyond loopback; the API server
/// refuses an anonymous request.
async fn loopback_only(cluster: &KitCluster, before: &BTreeSet<SocketAddr>) -> Result<(), Failed> {
    let new: BTreeSet<SocketAddr> = exposure::listening().difference(before).copied().collect();
    let bindings = exposure::bindings(&cluster.name).await?;
    eprintln!("smoke: published {bindings:?}; new listeners {new:?}");
    if bindings.len() != 3 {
        return Err(format!("expected the server's 6443, 80 and 443 published, found {bindings:?}").into());
    }
    let beyond = exposure::beyond_loopback(&new, &bindings);
    if !beyond.is_empty() {
        return Err(format!("exposed beyond loopback: {}", beyond.join("; ")).into());
    }
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| format!("failed to build an HTTPS client: {e}"))?;
    let url = format!("https://127.0.0.1:{}/version", cluster.api_port);
    let status = client.get(&url).send().await.map_err(|e| format!("failed to GET {url}: {e}"))?.status();
    if status != reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!("anonymous GET {url}: expected 401 (anonymous auth off), found {status}").into());
    }
    Ok(())
}

/// Every node's conntrack forgets an unanswered connection attempt after
/// SYN_SENT_SECONDS, not the kernel's 120 s (live-node-loss's budget needs
/// it).
async fn conntrack_syn_sent(cluster: &KitCluster) -> Result<(), Failed> {
    let path = format!("/proc/sys/{}", SYN_SENT_SYSCTL.replace('.', "/"));
    for node in cluster.nodes() {
        let found = docker::docker(&["exec", &node.container, "cat", &path]).await?;
        if found.trim() != SYN_SENT_SECONDS.to_string() {
            return Err(format!(
                "{}: {SYN_SENT_SYSCTL} expected {SYN_SENT_SECONDS}, found {}",
                node.name,
                found.trim()
            )
            .into());
        }
    }
    Ok(())
}

async fn exercise(cluster: &KitCluster, t: &Timeouts) -> Result<(), Failed> {
    let client = &cluster.client;
    let nodes = readiness::nodes_ready(client, 3, t.nodes_ready).await?;
    conntrack_syn_sent(cluster).await?;
    cluster.serve_image(&[&app_image()], &registry_beside(&app_image()), Timeouts::default().node_component).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            NS,
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})),
        )
        .await
        .map_err(|e| format!("create namespace: {e}"))?;

    // A pod runs and a Service answers, through the real ingress over HTTPS with SNI.
    let (ca_pem, cert_pem, key_pem) = tls_for_host();
    apply::<Secret>(
        client,
        None,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "smoke-tls"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert_pem, "tls.key": key_pem}
        }),
    )
    .await;
    apply::<Deployment>(client, None, json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
          "template": {"metadata": {"labels": {"app": "api"}}, "spec": {
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "api"}}}],
            "containers": [{"name": "api", "image": "ghcr.io/greenlang/cbam-api:v1.0.0", "imagePullPolicy": "IfNotPresent",
              "env": [{"name": "DATA_DIR", "value": "/tmp"}, {"name": "LOGS_DIR", "value": "/tmp"}, {"name": "OUTPUT_DIR", "value": "/tmp"},
                      {"name": "UPLOADS_DIR", "value": "/tmp"}, {"name": "DATABASE_URL", "value": "smoke"}, {"name": "REDIS_URL", "value": "smoke"}],
              "ports": [{"name": "http", "containerPort": 8000}],
              "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, "periodSeconds": 2}}]}}}
    })).await;
    apply::<Service>(
        client,
        None,
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
            "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}
        }),
    )
    .await;
    apply::<Ingress>(
        client,
        None,
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "api"},
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": [HOST], "secretName": "smoke-tls"}],
              "rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}]}
        }),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    until("Deployment smoke/api: 2 replicas available", t.rollout, || {
        let api = deployments.clone();
        async move {
            match api.get("api").await {
                Ok(d) => match d.status.and_then(|s| s.available_replicas).unwrap_or(0) {
                    2 => Poll::Done(()),
                    n => Poll::Pending(format!("{n} available")),
                },
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let on: Vec<String> = pods
        .list(&ListParams::default().labels("app=api"))
        .await?
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    if on.iter().collect::<std::collections::BTreeSet<_>>().len() != 2 {
        return Err(format!("the two replicas must run on two nodes, found {on:?}").into());
    }
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .resolve(HOST, std::net::SocketAddr::from(([127, 0, 0, 1], cluster.https_port)))
        .timeout(t.request)
        .build()?;
    let url = format!("https://{HOST}:{}/health", cluster.https_port);
    until(&format!("GET {url} (SNI {HOST}, chained to the run's CA) answers 200"), t.rollout, || {
        let (https, url) = (https.clone(), url.clone());
        async move {
            match https.get(&url).send().await {
                Ok(r) if r.status() == 200 => Poll::Done(()),
                Ok(r) => Poll::Pending(format!("HTTP {}", r.status())),
                Err(e) => Poll::Pending(format!("{e:?}")),
            }
        }
    })
    .await?;

    // Pod CPU/memory metrics are served for the workload.
    until("pod metrics for smoke/api", t.addons_ready, || {
        let client = client.clone();
        async move {
            let Ok(request) =
                http::Request::get(format!("/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods")).body(Vec::new())
            else {
                return Poll::Pending("request".into());
            };
            match client.request::<serde_json::Value>(request).await {
                Ok(v) => {
                    let with_usage = v["items"].as_array().map_or(0, |items| {
                        items
                            .iter()
                            .filter(|i| {
                                i["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("api-"))
                                    && i["containers"][0]["usage"]["cpu"].is_string()
                            })
                            .count()
                    });
                    if with_usage >= 2 {
                        Poll::Done(())
                    } else {
                        Poll::Pending(format!("{with_usage} api pods with usage"))
                    }
                }
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await?;

    // A ReadWriteMany volume written from pods on different nodes.
    apply::<PersistentVolumeClaim>(
        client,
        None,
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}
        }),
    )
    .await;
    apply::<DaemonSet>(client, None, json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "writer"},
        "spec": {"selector": {"matchLabels": {"app": "writer"}}, "template": {"metadata": {"labels": {"app": "writer"}}, "spec": {
          "tolerations": [{"operator": "Exists"}],
          "containers": [{"name": "w", "image": kit::BUSYBOX_IMAGE, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "echo $NODE > /data/$NODE; while true; do ls /data; sleep 1; done"],
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
          "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "shared"}}]}}}
    })).await;
    let wanted = nodes.clone();
    until("every node's file visible on the shared ReadWriteMany volume", t.rollout, || {
        let (pods, wanted) = (pods.clone(), wanted.clone());
        async move {
            let Ok(list) = pods.list(&ListParams::default().labels("app=writer")).await else {
                return Poll::Pending("list writer pods".into());
            };
            let Some(name) = list.items.first().and_then(|p| p.metadata.name.clone()) else {
                return Poll::Pending("no writer pod".into());
            };
            match pods.logs(&name, &LogParams { tail_lines: Some(20), ..LogParams::default() }).await {
                Ok(log) if wanted.iter().all(|n| log.lines().any(|l| l.trim() == n)) => Poll::Done(()),
                Ok(log) => Poll::Pending(format!("{name} sees {:?}", log.lines().rev().take(3).collect::<Vec<_>>())),
                Err(e) => Poll::failed(format!("logs of {name}: {e}"), &e),
            }
        }
    })
    .await?;
    // A failed run's evidence: each node's component logs through the Cluster trait.
    let evidence = tempfile::tempdir()?;
    let export =
        cbam_cluster::cluster::Cluster::node_logs(cluster, evidence.path()).ok_or("the kit gives no node logs")?;
    export.await?;
    for node in &nodes {
        let file = evidence.path().join(node).join("kubelet.log");
        if std::fs::metadata(&file).map_or(true, |m| m.len() == 0) {
            return Err(format!("the kit's node logs have no {}", file.display()).into());
        }
    }
    Ok(())
}

/// An agent whose token names another CA (a server it should not trust, or
/// a wrong token) stops before it sends the bootstrap secret, and joins
/// nothing: started as the provider starts every agent, its own FATAL line
/// is what `start` reports, within the node's startup bound.
async fn impostor_refused(cluster: &KitCluster) -> Result<(), Failed> {
    let wrong = format!("K10{}::server:not-the-password", "0".repeat(64));
    match cluster.join_agent("impostor", &wrong).await {
        Err(ClusterError::NodeFailed { said, .. })
            if said.contains("is not the token's") && said.contains("not joining") => {}
        Err(e) => {
            return Err(format!(
                "an agent with a token naming another CA: expected a refusal, found: {}",
                cbam_error_chain::render(&e)
            )
            .into());
        }
        Ok(_) => return Err("an agent with a token naming another CA joined".into()),
    }
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client.clone());
    if nodes.get_opt("impostor").await?.is_some() {
        return Err("the impostor agent registered a node".into());
    }
    eprintln!("smoke: an agent whose token names another CA was refused");
    Ok(())
}

/// How many derived bootstrap tokens the API server must accept (issue 28:
/// about 1 in 16 has an all-digit id; the sample is also searched for ids
/// that look like other numbers).
const JOIN_TOKENS: usize = 2_000;

/// Passwords of the node's kind whose derived tokens include every
/// numeric-looking id shape ("513048", "012345", "1e5234").
fn join_passwords() -> Vec<String> {
    let special = token_shapes::numeric_looking_passwords();
    let mut out: Vec<String> = token_shapes::passwords(JOIN_TOKENS - special.len()).collect();
    out.extend(special.into_iter().map(|(_, password)| password));
    out
}

/// The join objects of JOIN_TOKENS derived tokens, made by the node's own
/// programs (cbam-join token, cbam-join objects) on the server, are all
/// accepted by its API server (server-side dry run: nothing is created).
async fn join_objects_accepted(cluster: &KitCluster) -> Result<(), Failed> {
    let server = &cluster.nodes()[0].container;
    // Copied beside the node's data: /tmp is a tmpfs, which `docker cp`
    // writes beneath, unseen.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("passwords");
    std::fs::write(&file, join_passwords().join("\n") + "\n")?;
    docker::docker(&["cp", file.to_str().ok_or("a UTF-8 path")?, &format!("{server}:/var/lib/cbam/smoke-passwords")])
        .await?;
    let started = std::time::Instant::now();
    let script = "set -euo pipefail
        while read -r p; do cbam-join token <<<\"$p\"; done </var/lib/cbam/smoke-passwords >/tmp/tokens
        cbam-join objects /var/lib/cbam/pki/ca.crt https://127.0.0.1:6443 </tmp/tokens >/tmp/join-objects.yaml
        echo \"all-digit ids: $(grep -cE '^[0-9]{6}\\.' /tmp/tokens)\"
        kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml apply --server-side --force-conflicts --dry-run=server \\
          -f /tmp/join-objects.yaml -o name | grep -c '^secret/bootstrap-token-'";
    let said = docker::docker(&["exec", server, "bash", "-c", script]).await?;
    let accepted: usize = said.lines().last().and_then(|l| l.trim().parse().ok()).ok_or(format!("no count: {said}"))?;
    if accepted != JOIN_TOKENS {
        return Err(format!("{accepted} of {JOIN_TOKENS} bootstrap Secrets accepted: {said}").into());
    }
    eprintln!(
        "smoke: the join objects of {JOIN_TOKENS} derived tokens accepted by the API server (dry run; {}) in {:.1} s",
        said.lines().next().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// An object the API server refuses ends a wait at its first attempt, with
/// the server's message: the node's until_ok, and the harness's wait.
async fn refusals_end_waits(cluster: &KitCluster) -> Result<(), Failed> {
    // The object: a token id written as a number.
    let refused = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bootstrap-token-513048", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token", "stringData": {"token-id": 513048}});
    let server = &cluster.nodes()[0].container;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("refused.json");
    std::fs::write(&file, serde_json::to_vec(&refused)?)?;
    docker::docker(&[
        "cp",
        file.to_str().ok_or("a UTF-8 path")?,
        &format!("{server}:/var/lib/cbam/smoke-refused.json"),
    ])
    .await?;
    let script = "fail() { echo \"FATAL: $*\" >&2; exit 1; }; hide() { printf %s \"$1\"; }; components=
        source /usr/local/lib/cbam/wait.sh
        until_ok 'a refused object' 120 \\
          kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml apply --server-side --dry-run=server -f /var/lib/cbam/smoke-refused.json";
    let started = std::time::Instant::now();
    let said = match docker::docker(&["exec", server, "bash", "-c", script]).await {
        Ok(out) => return Err(format!("the node's wait accepted a refused object: {out}").into()),
        Err(e) => cbam_error_chain::render(&e),
    };
    let took = started.elapsed();
    if !said.contains("refused while waiting for a refused object (not retried)") || !said.contains("expected string") {
        return Err(format!("the node's wait on a refused object said: {said}").into());
    }
    // Its bound is 120 s; a retry loop would spend it.
    if took > Duration::from_secs(30) {
        return Err(format!("the node's wait on a refused object took {took:?}: {said}").into());
    }
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "kube-system");
    let mut attempts = 0;
    let outcome = until("a refused object applied", Duration::from_secs(120), || {
        attempts += 1;
        let (secrets, refused) = (secrets.clone(), refused.clone());
        async move {
            let params = PatchParams { dry_run: true, ..PatchParams::apply(MANAGER) };
            match secrets.patch("bootstrap-token-513048", &params, &Patch::Apply(&refused)).await {
                Ok(_) => Poll::Done(()),
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await;
    match outcome {
        Err(e @ cbam_cluster::wait::WaitError::Refused { .. })
            if attempts == 1 && e.to_string().contains("expected string") =>
        {
            eprintln!("smoke: a refused object ended both waits at once ({:.1} s; {e})", took.as_secs_f64());
            Ok(())
        }
        other => Err(format!("the harness's wait on a refused object, after {attempts} attempts: {other:?}").into()),
    }
}

/// A one-node cluster whose `component` gets a flag it refuses: it exits
/// at once, every time.
async fn broken(name: &str, component: &str) -> KitOptions {
    assert!(docker::engine_reachable().await, "no Docker engine answers: run `just engine` (ci/engine.sh) first");
    let image = kit::node_image().unwrap_or_else(|e| panic!("{e}"));
    KitOptions {
        name: name.into(),
        agents: 0,
        image,
        timeouts: Timeouts::default(),
        reuse: false,
        keep: false,
        component_args: vec![(component.into(), "--no-such-flag".into())],
    }
}

async fn nothing_left(name: &str) {
    let left = docker::docker(&["ps", "-aq", "--filter", &format!("label={LABEL}={name}")]).await.expect("docker ps");
    assert!(left.trim().is_empty(), "a cluster that did not come up is removed; left: {left}");
}

/// While a node boots: the node stops at once, naming the component (not
/// after the component's bound), and `up` removes what it made.
#[tokio::test]
async fn a_component_crash_looping_at_boot_stops_the_node_naming_it() {
    let opts = broken("cbam-crashloop-boot", "etcd").await;
    let started = std::time::Instant::now();
    let err = KitCluster::up(&opts).await.expect_err("etcd cannot start");
    let said = cbam_error_chain::render(&err);
    eprintln!("smoke: {said} ({:.1} s)", started.elapsed().as_secs_f64());
    assert!(said.contains("start node server: etcd is crash-looping"), "{said}");
    assert!(said.contains("no-such-flag"), "the component's own words are shown: {said}");
    assert!(started.elapsed() < opts.timeouts.node_component, "a crash loop is not waited out");
    nothing_left(&opts.name).await;
}

/// After a node is ready (kube-proxy is started, never waited for): the
/// readiness gate fails naming the component and the node, with its log.
#[tokio::test]
async fn a_component_crash_looping_after_boot_fails_the_gate_naming_it() {
    let opts = broken("cbam-crashloop-gate", "kube-proxy").await;
    let cluster = KitCluster::up(&opts).await.expect("the node boots: nothing waits for kube-proxy");
    let gate = readiness::gate(&cluster, &opts.timeouts).await;
    cluster.down().await.expect("cluster down");
    nothing_left(&opts.name).await;
    let err = gate.expect_err("kube-proxy cannot run");
    let said = cbam_error_chain::render(&err);
    eprintln!("smoke: {said}");
    assert!(matches!(err, readiness::GateError::CrashLoop(_)), "{said}");
    assert!(said.contains("kube-proxy on node server is crash-looping: exited"), "{said}");
    assert!(said.contains("no-such-flag"), "what the component said is shown: {said}");
}

/// The real kind CLI on the kind node image built here (issue 29): 1
/// control plane + 2 workers created by `kind create cluster`, every node
/// Ready, the harness's addons installed and gated as on the kit (ingress
/// answering on 127.0.0.1, metrics API, storage), kube-system running (the
/// image's own CNI, CoreDNS), a pod on one worker reaches a pod on the
/// other and resolves a Service by name, and
/// `kind delete` leaves nothing: node containers, their volumes, the `kind`
/// network when the run made it.
#[tokio::test]
async fn kind_cluster_smoke() {
    use cbam_cluster::kind::{CLUSTER_LABEL, KindCluster, KindOptions};
    assert!(docker::engine_reachable().await, "no Docker engine answers: run `just engine` (ci/engine.sh) first");
    let image = cbam_cluster::kind::node_image().unwrap_or_else(|e| panic!("{}", cbam_error_chain::render(&e)));
    assert!(docker::image_present(&image).await, "kind node image {image} is not loaded: run `just kit`");
    let t = Timeouts::default();
    let opts = KindOptions {
        name: "cbam-kind-smoke".into(),
        workers: 2,
        image,
        create_timeout: t.node_start * 3,
        kept_storage: None,
    };
    let started = std::time::Instant::now();
    let cluster = KindCluster::up(&opts).await.unwrap_or_else(|e| panic!("{}", cbam_error_chain::render(&e)));
    eprintln!("smoke: kind created {:?} in {:.1} s", cluster.nodes, started.elapsed().as_secs_f64());
    let result = kind_exercise(&cluster, &t).await;
    let volumes = kind_volumes(&cluster.nodes).await.expect("docker inspect");
    cluster.down().await.unwrap_or_else(|e| panic!("{}", cbam_error_chain::render(&e)));
    result.unwrap_or_else(|e| panic!("{e}"));
    let left = docker::docker(&["ps", "-aq", "--filter", &format!("label={CLUSTER_LABEL}=cbam-kind-smoke")])
        .await
        .expect("docker ps");
    assert!(left.is_empty(), "kind delete left node containers: {left}");
    assert!(!volumes.is_empty(), "the kind nodes had no volume (/var)");
    for volume in &volumes {
        assert!(docker::docker(&["volume", "inspect", volume]).await.is_err(), "kind delete left the volume {volume}");
    }
}

/// The anonymous volumes of the node containers (kind's /var).
async fn kind_volumes(nodes: &[String]) -> Result<Vec<String>, Failed> {
    let mut volumes = Vec::new();
    for node in nodes {
        let out = docker::docker(&[
            "inspect",
            node,
            "--format",
            "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
        ])
        .await?;
        volumes.extend(out.split_whitespace().map(str::to_owned));
    }
    Ok(volumes)
}

async fn kind_exercise(cluster: &cbam_cluster::kind::KindCluster, t: &Timeouts) -> Result<(), Failed> {
    let client = &cluster.client;
    let nodes = readiness::nodes_ready(client, 3, t.nodes_ready).await?;
    // The harness's addon layer, installed by `up` and gated as on the kit
    // (its images are in the kind node image).
    let started = std::time::Instant::now();
    readiness::platform_ready(client, 3, cluster.http_port, t).await?;
    // kind's own class is the one default, binding at once (the harness's
    // shared-filesystem storage on top of it; addons::bind_at_once).
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(client.clone());
    let defaults: Vec<(String, String)> = classes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(readiness::is_default_class)
        .map(|c| (c.metadata.name.unwrap_or_default(), c.volume_binding_mode.unwrap_or_default()))
        .collect();
    if defaults != [("standard".to_owned(), "Immediate".to_owned())] {
        return Err(format!("kind's default StorageClasses: {defaults:?}, not kind's standard binding at once").into());
    }
    eprintln!(
        "smoke: kind's addons ready in {:.1} s (ingress on 127.0.0.1:{}, metrics API, one default StorageClass)",
        started.elapsed().as_secs_f64(),
        cluster.http_port
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    until("every kube-system pod Running and Ready", t.addons_ready, || {
        let pods = pods.clone();
        async move {
            match pods.list(&ListParams::default()).await {
                Ok(list) => {
                    let waiting: Vec<String> = list
                        .items
                        .iter()
                        .filter(|p| {
                            !p.status
                                .as_ref()
                                .and_then(|s| s.conditions.as_ref())
                                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                        })
                        .filter_map(|p| p.metadata.name.clone())
                        .collect();
                    if waiting.is_empty() && !list.items.is_empty() {
                        Poll::Done(())
                    } else {
                        Poll::Pending(format!("not Ready: {waiting:?}"))
                    }
                }
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await?;
    // The kit's busybox, loaded as `kind load image-archive` does.
    let busybox = kit::dir().join("images/busybox.tar");
    cluster.load_image_archive(&busybox, t.node_component).await?;
    let workers: Vec<&String> = nodes.iter().filter(|n| n.ends_with("-worker") || n.ends_with("-worker2")).collect();
    if workers.len() != 2 {
        return Err(format!("expected two workers among {nodes:?}").into());
    }
    let default: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, node: &str, script: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [{"name": "c",
                "image": kit::BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["/bin/busybox", "sh", "-c", script]}]}})
    };
    let params = PatchParams::apply(MANAGER);
    default.patch("target", &params, &Patch::Apply(&pod("target", workers[0], "sleep 600"))).await?;
    let target_ip = until("the target pod's IP", t.rollout, || {
        let default = default.clone();
        async move {
            match default.get("target").await {
                Ok(p) => match p.status.and_then(|s| s.pod_ip) {
                    Some(ip) => Poll::Done(ip),
                    None => Poll::Pending("no IP yet".into()),
                },
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await?;
    // Across nodes by pod IP, then cluster DNS for a Service name.
    let script = format!(
        "/bin/busybox ping -c 2 -W 5 {target_ip} && /bin/busybox nslookup kubernetes.default.svc.cluster.local"
    );
    default.patch("probe", &params, &Patch::Apply(&pod("probe", workers[1], &script))).await?;
    let phase = until("the probe pod to finish", t.rollout, || {
        let default = default.clone();
        async move {
            match default.get("probe").await {
                Ok(p) => match p.status.and_then(|s| s.phase).as_deref() {
                    Some(phase @ ("Succeeded" | "Failed")) => Poll::Done(phase.to_owned()),
                    other => Poll::Pending(format!("phase {other:?}")),
                },
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await?;
    if phase != "Succeeded" {
        let said = default.logs("probe", &LogParams::default()).await.unwrap_or_default();
        return Err(format!(
            "a pod on {} could not reach {target_ip} on {} or resolve a Service: {said}",
            workers[1], workers[0]
        )
        .into());
    }
    eprintln!("smoke: kind pods reach each other across nodes and resolve Services");
    // kind applies the node image's manifests itself: every pin substituted.
    let node = format!("{}-control-plane", cluster.name);
    for manifest in ["default-storage.yaml", "default-cni.yaml"] {
        let text = docker::docker(&["exec", &node, "cat", &format!("/kind/manifests/{manifest}")]).await?;
        if let Some(at) = text.find("__") {
            return Err(format!(
                "/kind/manifests/{manifest} keeps a placeholder: {}",
                &text[at..(at + 40).min(text.len())]
            )
            .into());
        }
    }
    // A failed run's evidence: `kind export logs` through the Cluster trait.
    let evidence = tempfile::tempdir()?;
    let export =
        cbam_cluster::cluster::Cluster::node_logs(cluster, evidence.path()).ok_or("kind gives no node logs")?;
    export.await?;
    for node in &nodes {
        for log in ["kubelet.log", "containerd.log"] {
            let file = evidence.path().join(node).join(log);
            if std::fs::metadata(&file).map_or(true, |m| m.len() == 0) {
                return Err(format!("kind export logs wrote no {}", file.display()).into());
            }
        }
    }
    eprintln!("smoke: kind export logs wrote every node's kubelet and containerd logs");
    Ok(())
}
