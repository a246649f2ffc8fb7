//! What a failed environment leaves for a human (chainsaw's catch): the
//! namespace's events, pod states and logs, and its Deployments, under
//! `diagnostics/<env>/` of the report.

use std::path::Path;

use cbam_cluster::cluster::Cluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use serde_json::json;

use cbam_error_chain::render as chain;
use cbam_model::evidence_file::write_atomic;

/// The nodes' own logs (`kind export logs` on kind, each kit node's
/// /var/log/cbam) under DIR/nodes; one line if they could not be copied.
pub(crate) async fn node_logs(cluster: &dyn Cluster, dir: &Path) -> Option<String> {
    let nodes = dir.join("nodes");
    let export = cluster.node_logs(&nodes)?;
    export.await.err().map(|e| format!("failed to copy the {} nodes' logs: {}", cluster.provider(), chain(&e)))
}

/// Collects what it can; returns one line per thing it could not read or
/// write (the run reports them beside the verdict, which they never change).
pub(crate) async fn collect(client: &Client, namespace: &str, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut write = |name: &str, text: &str| {
        if let Err(e) = write_atomic(&dir.join(name), text) {
            problems.push(chain(&e));
        }
    };
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let lines: Vec<String> = list
                .items
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {}/{}: {}",
                        e.type_.clone().unwrap_or_default(),
                        e.reason.clone().unwrap_or_default(),
                        e.involved_object.kind.clone().unwrap_or_default(),
                        e.involved_object.name.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default()
                    )
                })
                .collect();
            write("events.txt", &lines.join("\n"));
        }
        Err(e) => write("events.txt", &format!("failed to list events: {e}")),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            let states: Vec<serde_json::Value> = list
                .items
                .iter()
                .map(|p| {
                    json!({"name": p.metadata.name, "node": p.spec.as_ref().and_then(|s| s.node_name.clone()), "status": p.status})
                })
                .collect();
            write("pods.json", &serde_json::to_string_pretty(&states).unwrap_or_default());
            for pod in &list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let log = match pods.logs(&name, &LogParams { tail_lines: Some(200), ..LogParams::default() }).await {
                    Ok(log) => log,
                    Err(e) => format!("failed to read the log: {e}"),
                };
                write(&format!("logs/{name}.log"), &log);
            }
        }
        Err(e) => write("pods.json", &json!({"error": format!("failed to list pods: {e}")}).to_string()),
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    match deployments.list(&ListParams::default()).await {
        Ok(list) => write("deployments.json", &serde_json::to_string_pretty(&list.items).unwrap_or_default()),
        Err(e) => {
            write("deployments.json", &json!({"error": format!("failed to list Deployments: {e}")}).to_string());
        }
    }
    problems
}
