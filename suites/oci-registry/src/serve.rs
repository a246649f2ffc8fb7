//! The read half of the OCI distribution API, as containerd uses it to pull:
//! `GET /v2/`, `GET|HEAD /v2/<name>/manifests/<tag|digest>` and
//! `GET|HEAD /v2/<name>/blobs/<digest>`. Anything else is refused: nothing
//! can be pushed, so what the cluster pulls is exactly the archive.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::json;

use crate::archive::Archive;

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Namespace {
    /// containerd's `?ns=` parameter: the registry host the pull is for.
    ns: Option<String>,
}

pub(crate) fn router(archive: Arc<Archive>) -> Router {
    Router::new().fallback(handle).with_state(archive)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "code": code, "message": message }] }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn content(media_type: &str, digest: &str, bytes: &[u8], head: bool) -> Response {
    let body = if head { Body::empty() } else { Body::from(bytes.to_vec()) };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE.as_str(), media_type),
        ("docker-content-digest", digest),
        (header::CONTENT_LENGTH.as_str(), &bytes.len().to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::HeaderName::from_bytes(name.as_bytes()).expect("static header name"), value);
        }
    }
    response
}

async fn handle(State(archive): State<Arc<Archive>>, method: Method, uri: Uri, Query(q): Query<Namespace>) -> Response {
    let response = route(&archive, &method, uri.path(), q.ns.as_deref());
    // One line per request: the evidence of which image a node pulled.
    println!(
        "{}",
        json!({ "method": method.as_str(), "path": uri.path(), "ns": q.ns, "status": response.status().as_u16() })
    );
    response
}

fn route(archive: &Archive, method: &Method, path: &str, ns: Option<&str>) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "this registry is read-only");
    }
    let head = method == Method::HEAD;
    if path == "/v2/" || path == "/v2" {
        let mut response = Response::new(Body::from("{}"));
        response.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
        return response;
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not a distribution API path");
    };
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return match archive.manifest(ns, name, reference) {
            Some(m) => content(&m.media_type, &m.digest, &archive.blobs[&m.digest], head),
            None => error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", &format!("no manifest {name}:{reference}")),
        };
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        return match archive.blobs.get(digest) {
            Some(bytes) => content("application/octet-stream", digest, bytes, head),
            None => error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", &format!("no blob {digest}")),
        };
    }
    error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not a distribution API path")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Manifest, digest_of};

    fn archive() -> (Archive, String) {
        let manifest = br#"{"schemaVersion":2}"#.to_vec();
        let digest = digest_of(&manifest);
        let mut archive = Archive::default();
        archive.blobs.insert(digest.clone(), manifest);
        let m = Manifest { digest: digest.clone(), media_type: "application/vnd.oci.image.manifest.v1+json".into() };
        archive.tags.insert("ghcr.io/greenlang/cbam-api:dev-latest".into(), m);
        (archive, digest)
    }

    #[test]
    fn answers_a_pull_with_the_digest_and_media_type() {
        let (archive, digest) = archive();
        let r = route(&archive, &Method::HEAD, "/v2/greenlang/cbam-api/manifests/dev-latest", Some("ghcr.io"));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(r.headers()["content-type"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(r.headers()["content-length"], "19");
        let blob = route(&archive, &Method::GET, &format!("/v2/greenlang/cbam-api/blobs/{digest}"), None);
        assert_eq!(blob.status(), StatusCode::OK);
        assert_eq!(route(&archive, &Method::GET, "/v2/", None).status(), StatusCode::OK);
    }

    #[test]
    fn refuses_unknown_tags_other_hosts_and_pushes() {
        let (archive, _) = archive();
        let path = "/v2/greenlang/cbam-api/manifests/dev-latest";
        assert_eq!(route(&archive, &Method::GET, path, Some("docker.io")).status(), StatusCode::NOT_FOUND);
        let stale = "/v2/greenlang/cbam-api/manifests/stale";
        assert_eq!(route(&archive, &Method::GET, stale, Some("ghcr.io")).status(), StatusCode::NOT_FOUND);
        assert_eq!(route(&archive, &Method::PUT, path, Some("ghcr.io")).status(), StatusCode::METHOD_NOT_ALLOWED);
        let unknown = "/v2/x/blobs/sha256:00";
        assert_eq!(route(&archive, &Method::GET, unknown, None).status(), StatusCode::NOT_FOUND);
    }
}
