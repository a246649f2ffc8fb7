//! The image archive `oci-image` writes (an OCI layout in a tar: `index.json`
//! naming each manifest with its full reference, `blobs/sha256/...`), read
//! into memory once: the application image is a few megabytes.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ArchiveError {
    #[error("read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parse index.json")]
    Index(#[source] serde_json::Error),
    #[error("find index.json: the archive is not an OCI image layout")]
    NoIndex,
    #[error("verify blob {path}: it does not match its digest (found {found})")]
    Corrupt { path: String, found: String },
    #[error("find manifest {0}: index.json names it, the archive does not hold it")]
    MissingManifest(String),
    #[error("serve {reference}: two archives name it, with manifests {first} and {second}")]
    Conflict { reference: String, first: String, second: String },
}

/// A manifest the registry can serve: its digest and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) digest: String,
    pub(crate) media_type: String,
}

/// Everything the registry serves.
#[derive(Debug, Default)]
pub(crate) struct Archive {
    /// Full reference (`ghcr.io/greenlang/cbam-api:dev-latest`) to its manifest.
    pub(crate) tags: HashMap<String, Manifest>,
    /// `sha256:...` to content, manifests included.
    pub(crate) blobs: HashMap<String, Vec<u8>>,
}

pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

impl Archive {
    pub(crate) fn open(path: &Path) -> Result<Self, ArchiveError> {
        let read = |source| ArchiveError::Read { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        Self::from_tar(file).map_err(|err| match err {
            ArchiveError::Read { source, .. } => read(source),
            other => other,
        })
    }

    pub(crate) fn from_tar(reader: impl Read) -> Result<Self, ArchiveError> {
        let io = |source| ArchiveError::Read { path: "archive".into(), source };
        let mut archive = Self::default();
        let mut index = None;
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let path = entry.path().map_err(io)?.display().to_string();
            let path = path.trim_start_matches("./").to_string();
            if path == "index.json" {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(io)?;
                index = Some(data);
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(io)?;
                let found = digest_of(&data);
                if found != format!("sha256:{hex}") {
                    return Err(ArchiveError::Corrupt { path, found });
                }
                archive.blobs.insert(found, data);
            }
        }
        let index: Value = serde_json::from_slice(&index.ok_or(ArchiveError::NoIndex)?).map_err(ArchiveError::Index)?;
        for entry in index["manifests"].as_array().into_iter().flatten() {
            let (Some(digest), Some(name)) =
                (entry["digest"].as_str(), entry["annotations"]["io.containerd.image.name"].as_str())
            else {
                continue;
            };
            if !archive.blobs.contains_key(digest) {
                return Err(ArchiveError::MissingManifest(digest.into()));
            }
            let media_type =
                entry["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
            archive.tags.insert(name.to_string(), Manifest { digest: digest.to_string(), media_type });
        }
        Ok(archive)
    }

    /// Adds OTHER's references and blobs: one registry serves both. The same
    /// reference for two different manifests is refused (which would be
    /// served depends on order); blobs are content-addressed, so a shared
    /// one is the same bytes.
    pub(crate) fn merge(&mut self, other: Archive) -> Result<(), ArchiveError> {
        for (reference, manifest) in other.tags {
            match self.tags.get(&reference) {
                Some(have) if *have != manifest => {
                    return Err(ArchiveError::Conflict {
                        reference,
                        first: have.digest.clone(),
                        second: manifest.digest,
                    });
                }
                _ => {
                    self.tags.insert(reference, manifest);
                }
            }
        }
        self.blobs.extend(other.blobs);
        Ok(())
    }

    /// The registry hosts the references name (Docker's rule: a first
    /// segment with a dot or a port, or `localhost`, is a host; otherwise
    /// the reference is Docker Hub's).
    pub(crate) fn hosts(&self) -> std::collections::BTreeSet<String> {
        self.tags
            .keys()
            .map(|reference| match reference.split_once('/') {
                Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                    first.to_owned()
                }
                _ => "docker.io".to_owned(),
            })
            .collect()
    }

    /// The manifest for `reference` (a tag or a digest) of repository `name`
    /// on registry host `host` (containerd says which host it resolves for
    /// with `?ns=`; without it, `name` alone must be unambiguous).
    pub(crate) fn manifest(&self, host: Option<&str>, name: &str, reference: &str) -> Option<&Manifest> {
        if reference.starts_with("sha256:") {
            return self.tags.values().find(|m| m.digest == reference);
        }
        match host {
            Some(host) => self.tags.get(&format!("{host}/{name}:{reference}")),
            None => {
                let suffix = format!("/{name}:{reference}");
                let mut found = self.tags.iter().filter(|(r, _)| r.ends_with(&suffix) || **r == suffix[1..]);
                match (found.next(), found.next()) {
                    (Some((_, m)), None) => Some(m),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_path(path).expect("path");
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append(&h, *data).expect("append");
        }
        tar.into_inner().expect("tar")
    }

    fn image() -> (Vec<u8>, String) {
        let manifest = br#"{"schemaVersion":2}"#;
        let digest = digest_of(manifest);
        let index = serde_json::json!({"manifests": [
            {"digest": digest, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "annotations": {"io.containerd.image.name": "ghcr.io/greenlang/cbam-api:dev-latest"}},
            {"digest": digest, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "annotations": {"io.containerd.image.name": "ghcr.io/greenlang/cbam-api:v1.0.0"}}]});
        let blob = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        let index = serde_json::to_vec(&index).expect("json");
        (tarball(&[("index.json", &index), (&blob, manifest)]), digest)
    }

    #[test]
    fn serves_each_named_tag_by_host_and_repository() {
        let (tar, digest) = image();
        let archive = Archive::from_tar(&tar[..]).expect("archive");
        let found = archive.manifest(Some("ghcr.io"), "greenlang/cbam-api", "dev-latest").expect("tag");
        assert_eq!(found.digest, digest);
        assert!(archive.manifest(Some("docker.io"), "greenlang/cbam-api", "dev-latest").is_none());
        assert!(archive.manifest(Some("ghcr.io"), "greenlang/cbam-api", "staging-latest").is_none());
        assert!(archive.manifest(None, "greenlang/cbam-api", "v1.0.0").is_some());
        assert!(archive.manifest(None, "greenlang/cbam-api", &digest).is_some());
    }

    #[test]
    fn names_the_hosts_of_its_references() {
        let mut archive = Archive::default();
        let manifest = Manifest { digest: "sha256:0".into(), media_type: "m".into() };
        for reference in ["ghcr.io/a/b:1", "ghcr.io/c:2", "localhost:5000/d:3", "library/busybox:1", "e:1"] {
            archive.tags.insert(reference.into(), manifest.clone());
        }
        let hosts: Vec<String> = archive.hosts().into_iter().collect();
        assert_eq!(hosts, ["docker.io", "ghcr.io", "localhost:5000"]);
    }

    #[test]
    fn refuses_a_blob_that_does_not_match_its_digest() {
        let bad = tarball(&[("index.json", b"{}"), ("blobs/sha256/00", b"x")]);
        assert!(matches!(Archive::from_tar(&bad[..]), Err(ArchiveError::Corrupt { .. })));
        assert!(matches!(Archive::from_tar(&tarball(&[])[..]), Err(ArchiveError::NoIndex)));
    }

    #[test]
    fn serves_two_archives_as_one_and_refuses_a_reference_they_disagree_on() {
        let (tar, digest) = image();
        let mut served = Archive::from_tar(&tar[..]).expect("archive");
        let mut tool = Archive::default();
        let other = Manifest { digest: "sha256:1".into(), media_type: "m".into() };
        tool.tags.insert("cbam-conformance.invalid/tool:1".into(), other.clone());
        served.merge(tool).expect("no shared reference");
        assert_eq!(served.manifest(None, "greenlang/cbam-api", "v1.0.0").map(|m| &m.digest), Some(&digest));
        assert_eq!(served.manifest(Some("cbam-conformance.invalid"), "tool", "1"), Some(&other));
        let mut clash = Archive::default();
        clash.tags.insert("ghcr.io/greenlang/cbam-api:v1.0.0".into(), other);
        let err = served.merge(clash).expect_err("two manifests for one reference");
        assert!(err.to_string().contains("two archives name it"), "{err}");
    }
}
