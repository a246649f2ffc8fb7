//! Exactly the documented resources, in the documented namespace, and no
//! committed Secret.

use std::collections::BTreeSet;

use crate::context::Context;
use cbam_model::manifest::Object;
use cbam_model::outcome::Recorder;

pub(crate) fn inventory(cx: &Context, r: &mut Recorder) {
    let overlay = format!("overlay {}", cx.env);
    let expected: BTreeSet<(String, String)> =
        cx.fixture.inventory.iter().map(|o| (o.kind.clone(), o.name.clone())).collect();
    let found: BTreeSet<(String, String)> =
        cx.overlay.iter().map(|o| (o.kind().to_owned(), o.name().to_owned())).collect();
    r.equal(&overlay, "resource count", expected.len(), cx.overlay.len());
    for (kind, name) in &expected {
        let present = found.contains(&(kind.clone(), name.clone()));
        r.record(
            &format!("{kind} {name}"),
            "in rendered overlay",
            "present",
            if present { "present" } else { "absent" },
            present,
        );
    }
    for (kind, name) in found.difference(&expected) {
        r.record(&format!("{kind} {name}"), "in rendered overlay", "absent (not in inventory)", "present", false);
    }
}

pub(crate) fn namespace(cx: &Context, r: &mut Recorder) {
    let expected = &cx.fixture.namespace;
    match cx.namespace_object() {
        Some(ns) => r.equal("Namespace", "name", expected.as_str(), ns.metadata.name.as_deref().unwrap_or("")),
        None => r.missing("Namespace", "object"),
    }
    for object in cx.overlay.iter().filter(|o| !matches!(o, Object::Namespace(_))) {
        let found = object.metadata().namespace.as_deref().unwrap_or("absent");
        r.equal(&object.label(), "metadata.namespace", expected.as_str(), found);
    }
}

pub(crate) fn secret_not_committed(cx: &Context, r: &mut Recorder) {
    let secrets: Vec<String> =
        cx.overlay.iter().chain(cx.governance).filter(|o| matches!(o, Object::Secret(_))).map(Object::label).collect();
    // Names only: a committed Secret's values must not reach the report.
    let found = if secrets.is_empty() { "none".to_owned() } else { secrets.join(", ") };
    r.record(
        &format!("overlay {} and governance", cx.env),
        &format!("Secret objects ({} must be created out of band)", cx.workload.secret.name),
        "none",
        found,
        secrets.is_empty(),
    );
}
