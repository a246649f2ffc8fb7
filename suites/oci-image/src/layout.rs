//! An image as one tarball that both `docker load` (manifest.json) and
//! containerd / k3s airgap import (OCI index.json with image names) accept.
//! Everything is deterministic: same inputs, same digests.

use std::io::Write;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub(crate) enum LayoutError {
    #[error("write image tar")]
    Io(#[from] std::io::Error),
}

/// What goes into the image.
#[derive(Debug)]
pub(crate) struct ImageSpec {
    /// Full references, e.g. `ghcr.io/greenlang/cbam-api:v1.0.0`.
    pub(crate) references: Vec<String>,
    pub(crate) entrypoint: String,
    pub(crate) binary: Vec<u8>,
    pub(crate) uid: u32,
    pub(crate) ports: Vec<u16>,
    /// Extra files: (path in the image, mode, contents).
    pub(crate) files: Vec<(String, u32, Vec<u8>)>,
    /// Symbolic links: (path in the image, target).
    pub(crate) links: Vec<(String, String)>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn header(path: &str, size: usize, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(path).ok();
    h.set_size(size as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn add_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, mode: u32, data: &[u8]) -> Result<(), LayoutError> {
    let h = header(path, data.len(), mode, tar::EntryType::Regular);
    tar.append(&h, data)?;
    Ok(())
}

fn add_link<W: Write>(tar: &mut tar::Builder<W>, path: &str, target: &str) -> Result<(), LayoutError> {
    let mut h = header(path, 0, 0o777, tar::EntryType::Symlink);
    h.set_link_name(target)?;
    h.set_cksum();
    tar.append(&h, std::io::empty())?;
    Ok(())
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str, mode: u32) -> Result<(), LayoutError> {
    let h = header(path, 0, mode, tar::EntryType::Directory);
    tar.append(&h, std::io::empty())?;
    Ok(())
}

/// The root filesystem: the binary, a passwd entry for the non-root user,
/// and empty mount points.
fn layer(spec: &ImageSpec) -> Result<Vec<u8>, LayoutError> {
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["etc/", "app/", "usr/", "usr/local/", "usr/local/bin/"] {
        add_dir(&mut tar, dir, 0o755)?;
    }
    add_dir(&mut tar, "tmp/", 0o1777)?;
    let uid = spec.uid;
    add_file(
        &mut tar,
        "etc/passwd",
        0o644,
        format!("root:x:0:0:root:/root:/sbin/nologin\napp:x:{uid}:{uid}:app:/app:/sbin/nologin\n").as_bytes(),
    )?;
    add_file(&mut tar, "etc/group", 0o644, format!("root:x:0:\napp:x:{uid}:\n").as_bytes())?;
    add_file(&mut tar, spec.entrypoint.trim_start_matches('/'), 0o755, &spec.binary)?;
    let mut dirs: Vec<String> = spec
        .files
        .iter()
        .map(|(p, _, _)| p.as_str())
        .chain(spec.links.iter().map(|(p, _)| p.as_str()))
        .flat_map(|p| {
            // Every ancestor directory, so the layer never relies on implicit parents.
            let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            (1..parts.len()).map(move |n| format!("{}/", parts[..n].join("/"))).collect::<Vec<_>>()
        })
        .filter(|d| !["etc/", "app/", "usr/", "usr/local/", "usr/local/bin/", "tmp/"].contains(&d.as_str()))
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        add_dir(&mut tar, &dir, 0o755)?;
    }
    for (path, mode, data) in &spec.files {
        add_file(&mut tar, path.trim_start_matches('/'), *mode, data)?;
    }
    for (path, target) in &spec.links {
        add_link(&mut tar, path.trim_start_matches('/'), target)?;
    }
    Ok(tar.into_inner()?)
}

fn tag_of(reference: &str) -> &str {
    reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or("latest", |(_, t)| t)
}

/// Returns the tarball and the image's manifest digest.
pub(crate) fn build(spec: &ImageSpec) -> Result<(Vec<u8>, String), LayoutError> {
    let layer = layer(spec)?;
    let layer_digest = digest(&layer);
    let ports: serde_json::Map<String, Value> = spec.ports.iter().map(|p| (format!("{p}/tcp"), json!({}))).collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": format!("{0}:{0}", spec.uid),
            "Entrypoint": [spec.entrypoint],
            "ExposedPorts": ports,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "WorkingDir": "/app",
        },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{ "created_by": "oci-image (cbam conformance kit)" }],
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = digest(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len() }],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    let manifest_digest = digest(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": spec.references.iter().map(|r| json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { "io.containerd.image.name": r, "org.opencontainers.image.ref.name": tag_of(r) },
        })).collect::<Vec<_>>(),
    });
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let docker =
        json!([{ "Config": blob(&config_digest), "RepoTags": spec.references, "Layers": [blob(&layer_digest)] }]);
    let mut out = tar::Builder::new(Vec::new());
    add_dir(&mut out, "blobs/", 0o755)?;
    add_dir(&mut out, "blobs/sha256/", 0o755)?;
    add_file(&mut out, &blob(&layer_digest), 0o644, &layer)?;
    add_file(&mut out, &blob(&config_digest), 0o644, &config)?;
    add_file(&mut out, &blob(&manifest_digest), 0o644, &manifest)?;
    add_file(&mut out, "oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add_file(&mut out, "index.json", 0o644, &serde_json::to_vec(&index).unwrap_or_default())?;
    add_file(&mut out, "manifest.json", 0o644, &serde_json::to_vec(&docker).unwrap_or_default())?;
    Ok((out.into_inner()?, manifest_digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn spec() -> ImageSpec {
        ImageSpec {
            references: vec![
                "ghcr.io/greenlang/cbam-api:v1.0.0".into(),
                "ghcr.io/greenlang/cbam-api:dev-latest".into(),
            ],
            entrypoint: "/usr/local/bin/cbam-api".into(),
            binary: b"\x7fELF-not-really".to_vec(),
            uid: 1000,
            ports: vec![8000],
            files: vec![("/etc/ssl/certs/ca.pem".into(), 0o644, b"pem".to_vec())],
            links: vec![("/bin/sh".into(), "/usr/local/bin/cbam-api".into())],
        }
    }

    fn entries(tarball: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tarball);
        let mut out = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            out.push((path, data));
        }
        out
    }

    #[test]
    fn is_deterministic() {
        assert_eq!(build(&spec()).expect("build").1, build(&spec()).expect("build").1);
    }

    #[test]
    fn every_blob_matches_its_digest_and_every_name_is_indexed() {
        let (tarball, _) = build(&spec()).expect("build");
        let files = entries(&tarball);
        for (path, data) in files.iter().filter(|(p, _)| p.starts_with("blobs/sha256/") && !p.ends_with('/')) {
            assert_eq!(digest(data), format!("sha256:{}", path.trim_start_matches("blobs/sha256/")));
        }
        let index = &files.iter().find(|(p, _)| p == "index.json").expect("index").1;
        let index: Value = serde_json::from_slice(index).expect("json");
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|m| m["annotations"]["io.containerd.image.name"].as_str())
            .collect();
        assert_eq!(names, ["ghcr.io/greenlang/cbam-api:v1.0.0", "ghcr.io/greenlang/cbam-api:dev-latest"]);
        assert!(files.iter().any(|(p, _)| p == "manifest.json"));
    }

    #[test]
    fn runs_as_the_non_root_user_with_a_passwd_entry() {
        let layer = layer(&spec()).expect("layer");
        let passwd = entries(&layer).into_iter().find(|(p, _)| p == "etc/passwd").expect("passwd").1;
        assert!(String::from_utf8_lossy(&passwd).contains("app:x:1000:1000"));
    }

    #[test]
    fn carries_extra_files_and_links_with_their_directories() {
        let mut archive = tar::Archive::new(std::io::Cursor::new(layer(&spec()).expect("layer")));
        let mut seen = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let link = entry.link_name().expect("link").map(|l| l.display().to_string());
            seen.push((entry.path().expect("path").display().to_string(), link));
        }
        assert!(
            seen.contains(&("etc/ssl/".into(), None)) && seen.contains(&("etc/ssl/certs/".into(), None)),
            "{seen:?}"
        );
        assert!(seen.contains(&("etc/ssl/certs/ca.pem".into(), None)));
        assert!(seen.contains(&("bin/sh".into(), Some("/usr/local/bin/cbam-api".into()))));
    }
}
