//! One environment's phases on a cluster: fit, apply (server-side, namespace
//! and governance first as the summary's commands do), then every row of the
//! live check table in order, diagnostics when a check failed, and the
//! namespace removed.

use std::time::Instant;

use cbam_cluster::timeouts::Timeouts;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

use crate::apply::apply;
use crate::catalog::{Role, Scope};
use crate::checks::LIVE_CHECKS;
use crate::context::LiveContext;
use crate::journal::{self, Undo};
use crate::judges::rate_bucket::IngressLog;
use crate::judges::restart_log::RestartLog;
use crate::run::error::LiveError;
use crate::run::preflight::Preflight;
use crate::run::target::{LiveOptions, Provider, Target};
use crate::run::{diagnostics, fit, run_ca};
use crate::traffic::https as edge;
use cbam_error_chain::render as chain;
use cbam_model::fixtures::{Environment, Replicas};
use cbam_model::manifest::Object;
use cbam_model::outcome::{Recorder, Status};
use cbam_model::profile::Profile;
use cbam_model::quantity::Quantity;
use cbam_model::run::LiveRun;
use cbam_model::run::{EnvResult, StaticRun};

pub(crate) fn timed(timings: &mut Vec<(String, f64)>, phase: String, since: Instant) {
    timings.push((phase, since.elapsed().as_secs_f64()));
}
/// Peak pods (max replicas + one surge pod) and per-pod requests, from the fixtures.
fn peak(fixture: &Environment) -> (u32, f64, f64) {
    let pods = match fixture.replicas {
        Replicas::Fixed(n) => n,
        Replicas::Hpa { max, .. } => max,
    };
    let q = |k: &str| fixture.resources.requests.get(k).and_then(|v| Quantity::parse(v).ok()).map_or(0.0, |q| q.0);
    (u32::try_from(pods + 1).unwrap_or(1), q("cpu"), q("memory"))
}
async fn node_capacity(client: &Client) -> Result<(f64, f64), LiveError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.map_err(|e| LiveError::Read(e.to_string()))?;
    let node = list.items.first().ok_or_else(|| LiveError::Read("no node".into()))?;
    let cap = node.status.as_ref().and_then(|s| s.capacity.clone()).unwrap_or_default();
    let get = |k: &str| cap.get(k).and_then(|q| Quantity::parse(&q.0).ok()).map_or(1.0, |q| q.0);
    Ok((get("cpu"), get("memory")))
}
fn secret(namespace: &str, name: &str, kind: &str, data: serde_json::Value) -> Result<Object, LiveError> {
    let value = json!({"apiVersion": "v1", "kind": "Secret", "type": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "cbam-conformance"}},
        "stringData": data});
    serde_json::from_value::<Secret>(value)
        .map(|s| Object::Secret(Box::new(s)))
        .map_err(|e| LiveError::Read(e.to_string()))
}
pub(crate) struct Env<'a> {
    pub(crate) result: &'a EnvResult,
    pub(crate) fixture: &'a Environment,
    /// The ingress controller's image, read once per run.
    pub(crate) controller: &'a str,
    /// What an existing cluster lacks of the checks' needs.
    pub(crate) preflight: &'a Preflight,
}

#[expect(clippy::too_many_lines, reason = "one environment's sequence reads best in order")]
pub(crate) async fn environment(
    run: &StaticRun,
    env: Env<'_>,
    cluster: &Target<'_>,
    opts: &LiveOptions,
    t: &Timeouts,
    out: &mut LiveRun,
) -> Result<(), LiveError> {
    let client = &cluster.client;
    if !cluster.cluster.owned() {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        match namespaces.get_opt(&env.fixture.namespace).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(LiveError::NamespaceExists(env.fixture.namespace.clone())),
            Err(e) => return Err(LiveError::Read(e.to_string())),
        }
    }
    let fixture = env.fixture;
    let ns = fixture.namespace.clone();
    let since = Instant::now();
    let (node_cpu, node_memory) = node_capacity(client).await?;
    let (pods, pod_cpu, pod_memory) = peak(fixture);
    let factor = opts.fit.unwrap_or_else(|| fit::auto_factor(pods, pod_cpu, pod_memory, node_cpu, node_memory));
    out.notes.push(format!(
        "{}: resources, quota and limit range divided by {factor} to fit {pods} peak pods on nodes of {node_cpu} CPU (the static tier checks the true values)",
        env.result.env
    ));
    let mut objects = env.result.objects.clone();
    let mut governance = if fixture.governance { run.governance.clone() } else { Vec::new() };
    fit::scale(&mut objects, factor);
    fit::scale(&mut governance, factor);
    let tls = run_ca::for_host(&fixture.hostname)?;
    let w = &run.expectations.workload;
    let secret_values: serde_json::Map<String, serde_json::Value> = w
        .secret
        .keys
        .iter()
        .map(|k| (k.clone(), json!(format!("conformance-test-value-for-{}", k.to_lowercase()))))
        .collect();
    let secrets = [
        secret(&ns, &w.secret.name, "Opaque", serde_json::Value::Object(secret_values))?,
        secret(
            &ns,
            &w.ingress.tls_secret,
            "kubernetes.io/tls",
            json!({"tls.crt": tls.cert_pem, "tls.key": tls.key_pem}),
        )?,
    ];
    // Namespace, then governance (as the summary's commands), secrets, the rest.
    let (namespaces, rest): (Vec<&Object>, Vec<&Object>) =
        objects.iter().partition(|o| matches!(o, Object::Namespace(_)));
    let undo_namespace = Undo::DeleteNamespace { name: ns.clone() };
    cluster.journal.record(undo_namespace.clone())?;
    for object in namespaces.into_iter().chain(governance.iter()).chain(secrets.iter()).chain(rest) {
        apply(client, object).await?;
    }
    timed(&mut out.timings, format!("{}: apply", env.result.env), since);
    let cx = LiveContext {
        env: env.result.env,
        fixture,
        workload: w,
        governance: &run.expectations.governance,
        autoscaling: &run.expectations.autoscaling,
        client: client.clone(),
        http: std::net::SocketAddr::from(([127, 0, 0, 1], cluster.http_port)),
        https: std::net::SocketAddr::from(([127, 0, 0, 1], cluster.https_port)),
        ca_pem: tls.ca_pem.clone(),
        timeouts: *t,
        controller: env.controller.to_owned(),
        tool_image: cluster.tool_image.clone(),
        factor,
        journal: cluster.journal,
        ingress_log: IngressLog::default(),
        restarts: RestartLog::default(),
        profile: opts.profile,
        report_dir: &opts.report_dir,
        disruption: &run.expectations.disruption,
        baseline: opts.baseline.as_ref().and_then(|b| b.objects.get(&env.result.env)).map(|objects| {
            let mut objects = objects.clone();
            fit::scale(&mut objects, factor);
            objects
        }),
        candidate: &objects,
        nodes: cluster.cluster.stoppable_nodes(),
        cluster: cluster.cluster,
        app_image: &opts.app_image,
        tool_archive: &opts.tool_archive,
        upgrade_to: match &opts.provider {
            Provider::Kit { upgrade_to, .. } => upgrade_to.as_deref(),
            _ => None,
        },
    };
    cx.ingress_log.routing(Instant::now(), edge::routing_version(&cx).await);
    let mut rolled = true;
    for check in LIVE_CHECKS {
        if (check.scope == Scope::Governed && !fixture.governance)
            || (check.nightly_only && opts.profile != Profile::Nightly)
        {
            continue;
        }
        let mut r = Recorder::new(cx.env, check.id);
        let since = Instant::now();
        if opts.skip_checks.iter().any(|s| s == check.id) {
            r.exclude(&cx.deployment_label(), format!("--skip-check {}", check.id));
        } else if let Some((need, why)) = env.preflight.missing_for(check) {
            r.skip(&cx.deployment_label(), "prerequisite (preflight)", need.describe(), why);
        } else if check.role == Role::NeedsRollout && !rolled {
            r.skip(
                &cx.deployment_label(),
                "precondition",
                "a rolled-out Deployment",
                "the rollout did not pass (see live-rollout)",
            );
        } else {
            // Progress: a live run takes minutes (an interrupt test waits for these too).
            eprintln!("live tier [{}]: {}", cx.env, check.id);
            (check.run)(&cx, &mut r).await;
        }
        if r.outcomes.is_empty() {
            r.record("harness", "facts compared", "at least one", "none", false);
        }
        if check.role == Role::Rollout {
            rolled = r.outcomes.iter().all(|o| o.status == Status::Pass);
        }
        crate::app_pods::sample_restarts(&cx).await;
        cx.ingress_log.routing(Instant::now(), edge::routing_version(&cx).await);
        out.outcomes.append(&mut r.outcomes);
        out.sections.append(&mut r.sections);
        timed(&mut out.timings, format!("{}: {}", cx.env, check.id), since);
    }
    if out.outcomes.iter().any(|o| o.env == cx.env && o.status == Status::Fail) {
        let dir = opts.report_dir.join("diagnostics").join(cx.env.as_str());
        out.notes.extend(diagnostics::collect(client, &ns, &dir).await);
        out.notes.extend(diagnostics::node_logs(cluster.cluster, &dir).await);
    }
    let since = Instant::now();
    if cluster.wait_cleanup {
        match journal::delete_namespace(client, &ns, t.namespace_cleanup).await {
            Ok(()) => cluster.journal.done(&undo_namespace)?,
            // Reported beside the verdict and kept in the journal for the next run.
            Err(e) => out.cleanup.push(format!("{undo_namespace}: {}", chain(&e))),
        }
    } else {
        // The cluster goes next: no need to wait.
        let api: Api<Namespace> = Api::all(client.clone());
        let _ = api.delete(&ns, &DeleteParams::background()).await;
        cluster.journal.done(&undo_namespace)?;
    }
    timed(&mut out.timings, format!("{}: cleanup", cx.env), since);
    Ok(())
}
