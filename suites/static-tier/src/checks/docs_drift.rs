//! The tables of infra/INFRASTRUCTURE_SUMMARY.md must say what the fixtures
//! say: documentation that drifts from the tested truth is a failure.

use crate::checks::hpa_timeline::describe;
use crate::context::Context;
use cbam_model::fixtures::{CorsPolicy, Environment, Governance, Replicas};
use cbam_model::outcome::{Recorder, shown};

const DOC: &str = "INFRASTRUCTURE_SUMMARY.md";

/// A Markdown table: header cells and rows of cells.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Cell text without Markdown emphasis or code marks.
pub(crate) fn normalize(cell: &str) -> String {
    let plain = cell.replace("**", "").replace('`', "").replace('→', "->");
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cells(line: &str) -> Vec<String> {
    let trimmed = line.trim().trim_start_matches('|').trim_end_matches('|');
    trimmed.split('|').map(normalize).collect()
}

pub(crate) fn tables(markdown: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in markdown.lines().chain(std::iter::once("")) {
        if line.trim_start().starts_with('|') {
            block.push(line);
            continue;
        }
        if block.len() >= 2 {
            let header = cells(block[0]);
            let rows = block[2..].iter().map(|l| cells(l)).collect();
            out.push(Table { header, rows });
        }
        block.clear();
    }
    out
}

impl Table {
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h.eq_ignore_ascii_case(name))
    }

    fn cell(&self, row_key: &str, column: &str) -> Option<&str> {
        let col = self.column(column)?;
        let row = self.rows.iter().find(|r| r.first().is_some_and(|c| c.eq_ignore_ascii_case(row_key)))?;
        row.get(col).map(String::as_str)
    }
}

fn find<'t>(tables: &'t [Table], first_header: &str, other_header: &str) -> Option<&'t Table> {
    tables.iter().find(|t| {
        t.header.first().is_some_and(|h| h.eq_ignore_ascii_case(first_header)) && t.column(other_header).is_some()
    })
}

fn replicas(env: &Environment, static_word: bool) -> String {
    match env.replicas {
        Replicas::Fixed(n) if static_word => format!("{n} (static)"),
        Replicas::Fixed(n) => n.to_string(),
        Replicas::Hpa { min, max } => format!("{min}-{max} (HPA)"),
    }
}

fn enabled(on: bool) -> String {
    if on { "Enabled".to_owned() } else { "Disabled".to_owned() }
}

fn quantity(map: &std::collections::BTreeMap<String, String>, key: &str) -> String {
    shown(map.get(key))
}

/// The overlays table, one row per environment.
fn overlay_cells(env: &Environment) -> Vec<(&'static str, String)> {
    let res = &env.resources;
    vec![
        ("Namespace", env.namespace.clone()),
        ("Replicas", replicas(env, false)),
        (
            "Resources",
            format!(
                "requests {} CPU / {}, limits {} CPU / {}",
                quantity(&res.requests, "cpu"),
                quantity(&res.requests, "memory"),
                quantity(&res.limits, "cpu"),
                quantity(&res.limits, "memory")
            ),
        ),
        ("Hostname", env.hostname.clone()),
        ("Image Tag", env.image.tag.clone()),
    ]
}

/// The comparison table, one column per environment.
fn comparison_cells(env: &Environment, governance: &Governance) -> Vec<(&'static str, String)> {
    let res = &env.resources;
    let cors = &env.app.cors;
    let cors_text = match cors.policy {
        CorsPolicy::Permissive => format!("Permissive ({})", cors.origins.join(", ")),
        CorsPolicy::Restricted => format!("Restricted: {}", cors.origins.join(", ")),
        CorsPolicy::Strict => format!("Strict: {}", cors.origins.join(", ")),
    };
    vec![
        ("Replicas", replicas(env, true)),
        ("CPU", format!("request {}, limit {}", quantity(&res.requests, "cpu"), quantity(&res.limits, "cpu"))),
        ("Memory", format!("request {}, limit {}", quantity(&res.requests, "memory"), quantity(&res.limits, "memory"))),
        (
            "Ephemeral Storage",
            format!(
                "request {}, limit {}",
                quantity(&res.requests, "ephemeral-storage"),
                quantity(&res.limits, "ephemeral-storage")
            ),
        ),
        ("Image Pull", env.image_pull_policy.clone()),
        ("Autoscaling", if matches!(env.replicas, Replicas::Hpa { .. }) { "Yes (HPA)".into() } else { "No".into() }),
        ("Hostname", env.hostname.clone()),
        ("TLS Issuer", env.tls_issuer.clone()),
        ("API Docs", enabled(env.app.api_docs)),
        ("Log Level", env.app.log_level.clone()),
        ("Tracing", enabled(env.app.tracing)),
        ("CORS", cors_text),
        (
            "Disruption Budget",
            if env.governance { format!("PDB minAvailable {}", governance.pdb.min_available) } else { "None".into() },
        ),
    ]
}

/// The production governance table (Setting | Value).
fn governance_cells(g: &Governance) -> Vec<(String, String)> {
    let hpa = &g.hpa;
    let mut cells = vec![
        ("HPA replicas".to_owned(), format!("{}-{}", hpa.min_replicas, hpa.max_replicas)),
        ("HPA CPU target".to_owned(), format!("{}%", hpa.cpu_utilization)),
        ("HPA memory target".to_owned(), format!("{}%", hpa.memory_utilization)),
        (
            "HPA custom metric".to_owned(),
            format!("{} (average {})", hpa.pods_metric.name, hpa.pods_metric.average_value),
        ),
        ("HPA scale-up timeline".to_owned(), describe(hpa.min_replicas, &hpa.predicted.scale_up)),
        ("PDB minAvailable".to_owned(), g.pdb.min_available.to_string()),
    ];
    for (key, value) in &g.resource_quota.hard {
        cells.push((format!("Quota {key}"), value.clone()));
    }
    let c = &g.limit_range.container;
    for (name, map) in
        [("default", &c.default), ("defaultRequest", &c.default_request), ("min", &c.min), ("max", &c.max)]
    {
        for (key, value) in map {
            cells.push((format!("LimitRange {name} {key}"), value.clone()));
        }
    }
    cells
}

fn compare(r: &mut Recorder, table: Option<&Table>, title: &str, row: &str, column: &str, want: &str) {
    let object = format!("{DOC} table '{title}'");
    match table {
        None => r.missing(&object, "table"),
        Some(t) => {
            let found = t.cell(row, column).map(str::to_owned);
            r.equal(&object, &format!("cell [{row}] x [{column}]"), normalize(want), shown(found));
        }
    }
}

pub(crate) fn docs_drift(cx: &Context, r: &mut Recorder) {
    let tables = tables(cx.summary);
    let env = cx.fixture;
    let overlays = find(&tables, "Environment", "Namespace");
    for (column, want) in overlay_cells(env) {
        compare(r, overlays, "Environment Overlays", &env.display_name, column, &want);
    }
    let comparison = find(&tables, "Feature", &env.display_name);
    for (row, want) in comparison_cells(env, cx.governance_fixture) {
        compare(r, comparison, "Environment Comparison", row, &env.display_name, &want);
    }
    if env.governance {
        let governance = find(&tables, "Setting", "Value");
        for (row, want) in governance_cells(cx.governance_fixture) {
            compare(r, governance, "Production Governance", &row, "Value", &want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cells_by_row_and_column() {
        let md = "intro\n\n| Feature | Development |\n|---|---|\n| **CPU** | `1` core |\n\nafter\n";
        let parsed = tables(md);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].cell("CPU", "Development"), Some("1 core"));
        assert_eq!(parsed[0].cell("Memory", "Development"), None);
    }
}
