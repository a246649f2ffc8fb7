//! The application settings in the ConfigMap: docs, logs, tracing, CORS and
//! the security headers the application sets.

use std::collections::BTreeMap;

use crate::context::Context;
use cbam_model::outcome::{Recorder, shown};

fn with_data(cx: &Context, r: &mut Recorder, check: impl FnOnce(&BTreeMap<String, String>, &str, &mut Recorder)) {
    let object = cx.label_of("ConfigMap", &cx.workload.config_map);
    match cx.config_map() {
        Some(cm) => check(cm.data.as_ref().unwrap_or(&BTreeMap::new()), &object, r),
        None => r.missing(&object, "object"),
    }
}

fn setting(cx: &Context, r: &mut Recorder, key: &'static str, expected: String) {
    with_data(cx, r, |data, object, r| r.equal(object, key, expected, shown(data.get(key).cloned())));
}

pub(crate) fn api_docs(cx: &Context, r: &mut Recorder) {
    setting(cx, r, "API_DOCS_ENABLED", cx.fixture.app.api_docs.to_string());
}

pub(crate) fn log_level(cx: &Context, r: &mut Recorder) {
    setting(cx, r, "LOG_LEVEL", cx.fixture.app.log_level.clone());
}

pub(crate) fn tracing(cx: &Context, r: &mut Recorder) {
    setting(cx, r, "TRACING_ENABLED", cx.fixture.app.tracing.to_string());
}

/// A comma-separated setting (origins, methods) as a list, spaces ignored.
pub(crate) fn origins(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

pub(crate) fn cors(cx: &Context, r: &mut Recorder) {
    let want = &cx.fixture.app.cors;
    with_data(cx, r, |data, object, r| {
        let get = |key: &str| data.get(key).cloned();
        r.equal(object, "CORS_POLICY", want.policy.as_str().to_owned(), shown(get("CORS_POLICY")));
        let found = get("CORS_ALLOWED_ORIGINS").map(|v| origins(&v).join(","));
        r.equal(object, "CORS_ALLOWED_ORIGINS", want.origins.join(","), shown(found));
        let methods = get("CORS_ALLOWED_METHODS").map(|v| origins(&v).join(","));
        r.equal(object, "CORS_ALLOWED_METHODS", want.methods.join(","), shown(methods));
        r.equal(
            object,
            "CORS_ALLOW_CREDENTIALS",
            want.allow_credentials.to_string(),
            shown(get("CORS_ALLOW_CREDENTIALS")),
        );
    });
}

/// `X-Frame-Options` -> `SECURITY_HEADER_X_FRAME_OPTIONS`
pub(crate) fn header_key(header: &str) -> String {
    format!("SECURITY_HEADER_{}", header.to_ascii_uppercase().replace('-', "_"))
}

pub(crate) fn security_headers(cx: &Context, r: &mut Recorder) {
    with_data(cx, r, |data, object, r| {
        for (header, value) in &cx.workload.security_headers {
            let key = header_key(header);
            r.equal(object, &key, value.clone(), shown(data.get(&key).cloned()));
        }
    });
}
