//! The kind node image `just kit` built (ci/kit/build-kind-node.sh) read
//! back: kind's base files are the pinned kind module's own, byte for byte
//! and at the modes its Dockerfile gives them; the node layer is where
//! `kind build node-image` puts it; and every image archive the node holds
//! contains the version its tag says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cbam_cluster::docker;
use sha2::{Digest, Sha256};

const VERSIONS: &str = include_str!("../../../../ci/versions.env");

fn pin(name: &str) -> &'static str {
    VERSIONS
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{name} pinned in ci/versions.env"))
}

/// The pinned kind module's images/base, where the tools step's `go install`
/// left it.
fn kind_base() -> PathBuf {
    let out = std::process::Command::new("go").args(["env", "GOMODCACHE"]).output().expect("run go env");
    let cache = String::from_utf8(out.stdout).expect("UTF-8");
    let dir = Path::new(cache.trim()).join(format!("sigs.k8s.io/kind@{}/images/base", pin("KIND_VERSION")));
    assert!(dir.join("Dockerfile").is_file(), "{} missing: run ci/install-tools.sh (it installs kind)", dir.display());
    dir
}

/// The base stage's COPY instructions of DOCKERFILE: (mode, sources, dest).
fn base_copies(dockerfile: &str) -> Vec<(u32, Vec<String>, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        if line.trim_start().starts_with('#') || (current.is_empty() && line.trim().is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stage = String::new();
    let mut copies = Vec::new();
    for instruction in instructions {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("FROM") => stage = words.last().unwrap_or(&"").to_ascii_lowercase(),
            Some("COPY") if stage == "base" => {
                let mode = words[1].strip_prefix("--chmod=").expect("kind's COPY sets --chmod");
                let mode = u32::from_str_radix(mode, 8).expect("an octal mode");
                let (dest, sources) = words[2..].split_last().expect("COPY SRC DEST");
                copies.push((mode, sources.iter().map(|s| s.to_string()).collect(), dest.to_string()));
            }
            _ => {}
        }
    }
    copies
}

/// Every file Docker's COPY puts where, with its mode (a later COPY of the
/// same path wins): a directory's files under DEST, a file at DEST/NAME, or
/// at DEST itself when DEST does not end in '/'.
fn expected_files(base: &Path, copies: &[(u32, Vec<String>, String)]) -> BTreeMap<String, (u32, PathBuf)> {
    fn walk(dir: &Path, into: &str, mode: u32, out: &mut BTreeMap<String, (u32, PathBuf)>) {
        for entry in std::fs::read_dir(dir).expect("read the module's files") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().expect("a name").to_string_lossy().into_owned();
            let dest = format!("{}/{name}", into.trim_end_matches('/'));
            if path.is_dir() {
                walk(&path, &dest, mode, out);
            } else {
                out.insert(dest, (mode, path));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (mode, sources, dest) in copies {
        for source in sources {
            let matches: Vec<PathBuf> = match source.strip_suffix("/*") {
                Some(dir) => {
                    let mut all: Vec<PathBuf> = std::fs::read_dir(base.join(dir))
                        .expect("read a source directory")
                        .map(|e| e.expect("an entry").path())
                        .collect();
                    all.sort();
                    all
                }
                None => vec![base.join(source.trim_end_matches('/'))],
            };
            for path in matches {
                if path.is_dir() {
                    walk(&path, dest, *mode, &mut out);
                } else if dest.ends_with('/') {
                    let name = path.file_name().expect("a name").to_string_lossy().into_owned();
                    out.insert(format!("{dest}{name}"), (*mode, path));
                } else {
                    out.insert(dest.clone(), (*mode, path));
                }
            }
        }
    }
    out
}

async fn node_image() -> String {
    assert!(docker::engine_reachable().await, "no Docker engine answers: run `just engine` first");
    let image = cbam_cluster::kind::node_image().unwrap_or_else(|e| panic!("{}", cbam_error_chain::render(&e)));
    assert!(docker::image_present(&image).await, "kind node image {image} is not loaded: run `just kit`");
    image
}

/// `sha256sum` and the mode of each of PATHS inside IMAGE, by path.
async fn read_back(image: &str, paths: &[&str]) -> BTreeMap<String, (String, u32)> {
    let script = "for f in \"$@\"; do printf '%s %s %s\\n' \"$(sha256sum < \"$f\" | cut -d' ' -f1)\" \"$(stat -c %a \"$f\")\" \"$f\"; done";
    let mut args = vec!["run", "--rm", "--entrypoint", "bash", image, "-c", script, "read-back"];
    args.extend_from_slice(paths);
    let out = docker::docker(&args).await.unwrap_or_else(|e| panic!("{}", cbam_error_chain::render(&e)));
    out.lines()
        .filter_map(|l| {
            let mut words = l.splitn(3, ' ');
            let (hash, mode, path) = (words.next()?, words.next()?, words.next()?);
            Some((path.to_owned(), (hash.to_owned(), u32::from_str_radix(mode, 8).ok()?)))
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn kinds_base_files_are_the_pinned_modules_own_byte_for_byte() {
    let image = node_image().await;
    let base = kind_base();
    let dockerfile = std::fs::read_to_string(base.join("Dockerfile")).expect("read kind's Dockerfile");
    let expected = expected_files(&base, &base_copies(&dockerfile));
    // Its entrypoint, kubelet unit and containerd config at least: a parse
    // that found nothing would prove nothing.
    for must in ["/usr/local/bin/entrypoint", "/etc/containerd/config.toml", "/etc/systemd/system/kubelet.service"] {
        assert!(expected.contains_key(must), "kind's Dockerfile puts no {must}: {:?}", expected.keys());
    }
    let paths: Vec<&str> = expected.keys().map(String::as_str).collect();
    let found = read_back(&image, &paths).await;
    let mut wrong = Vec::new();
    for (path, (mode, source)) in &expected {
        match found.get(path) {
            Some((hash, found_mode)) if *hash == sha256(source) && found_mode == mode => {}
            Some((hash, found_mode)) => {
                wrong.push(format!("{path}: {hash} mode {found_mode:o}, module {} mode {mode:o}", sha256(source)))
            }
            None => wrong.push(format!("{path}: not in the image")),
        }
    }
    assert!(wrong.is_empty(), "{image} differs from kind's files:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_node_layer_is_where_kind_build_node_image_puts_it() {
    let image = node_image().await;
    let base = kind_base();
    let script = "cat /kind/version; echo; for b in kubeadm kubelet kubectl; do test -x /usr/bin/$b && echo $b; done; \
                  ls /kind/manifests; ls /var/lib/containerd >/dev/null && echo containerd-store";
    let out = docker::docker(&["run", "--rm", "--entrypoint", "bash", &image, "-c", script])
        .await
        .unwrap_or_else(|e| panic!("{}", cbam_error_chain::render(&e)));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&pin("KUBERNETES_VERSION")), "/kind/version: {out}");
    for want in ["kubeadm", "kubelet", "kubectl", "default-cni.yaml", "default-storage.yaml", "containerd-store"] {
        assert!(lines.contains(&want), "{want} missing from the node layer: {out}");
    }
    // kind's storage manifest as its source has it, with the kit's images in
    // place of kind's two image constants.
    let source = std::fs::read_to_string(base.join("../../pkg/build/nodeimage/const_storage.go")).expect("read");
    let start = source.find("const defaultStorageManifest = `").expect("kind's storage manifest") + 32;
    let text = &source[start..];
    let text = &text[..text.find("\n`").expect("its end") + 1];
    let expected = text
        .replace(
            "` + storageProvisionerImage + `",
            &format!("docker.io/rancher/local-path-provisioner:{}", pin("LOCAL_PATH_PROVISIONER_VERSION")),
        )
        .replace("` + storageHelperImage + `", &format!("docker.io/library/busybox:{}", pin("BUSYBOX_TAG")));
    let found = docker::docker(&["run", "--rm", "--entrypoint", "cat", &image, "/kind/manifests/default-storage.yaml"])
        .await
        .expect("read the storage manifest");
    assert_eq!(found.trim(), expected.trim(), "/kind/manifests/default-storage.yaml is not kind's");
}

/// How an image of repository REPO tagged TAG says what it contains: the
/// command (entrypoint first) and the text its answer must hold. None: the
/// program has no version command (prometheus-adapter), and its Go build
/// information names the module version compiled in instead.
fn version_command(repo: &str, tag: &str) -> Option<(Vec<String>, String)> {
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let bare = tag.trim_start_matches('v');
    let (command, says): (Vec<&str>, String) = match name {
        "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kube-proxy" => {
            return Some((vec![format!("/usr/local/bin/{name}"), "--version".into()], format!("Kubernetes {tag}")));
        }
        "etcd" => (vec!["/usr/local/bin/etcd", "--version"], format!("etcd Version: {bare}")),
        "coredns" => (vec!["/coredns", "-version"], format!("CoreDNS-{bare}")),
        "pause" => (vec!["/pause", "-v"], format!("pause.c v{bare}")),
        "busybox" => (vec!["/bin/busybox"], format!("BusyBox v{bare}")),
        "traefik" => (vec!["/traefik", "version"], format!("v{bare}\n")),
        "prometheus" => (vec!["/bin/prometheus", "--version"], format!("prometheus, version {bare} ")),
        "metrics-server" => (vec!["/metrics-server", "--version"], format!("v{bare}")),
        "local-path-provisioner" => {
            (vec!["/usr/local/bin/local-path-provisioner", "--version"], format!("version v{bare}"))
        }
        _ => return None,
    };
    Some((command.into_iter().map(str::to_owned).collect(), says))
}

/// stdout and stderr of `docker ARGS`, whatever its exit.
fn docker_said(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().expect("run docker");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn every_image_in_the_kind_node_holds_the_version_its_tag_says() {
    node_image().await;
    let dir = cbam_cluster::kit::dir().join("kind-images");
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e} (run `just kit`)", dir.display()))
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    archives.sort();
    assert!(archives.len() >= 12, "{} archives in {}", archives.len(), dir.display());
    let mut wrong = Vec::new();
    for archive in &archives {
        let loaded = docker_said(&["load", "-i", archive.to_str().expect("UTF-8")]);
        let reference = loaded
            .lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("docker load {}: {loaded}", archive.display()))
            .trim()
            .to_owned();
        let (repo, tag) = reference.rsplit_once(':').expect("REPO:TAG");
        let said = match version_command(repo, tag) {
            Some((command, says)) => {
                let mut args = vec!["run", "--rm", "--entrypoint", command[0].as_str(), reference.as_str()];
                args.extend(command[1..].iter().map(String::as_str));
                let answer = docker_said(&args);
                (!answer.contains(&says))
                    .then(|| format!("{reference}: `{}` said {answer:?}, not {says:?}", command.join(" ")))
            }
            None if repo.ends_with("/cbam-cni") => {
                // The project's own pod network has no version: its tag is
                // its source's (and compiler's) content, as the build makes it.
                let source = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/kit/cni/main.go"))
                    .expect("read cbam-cni's source");
                let go = std::process::Command::new("go").arg("version").output().expect("go version").stdout;
                let hash: String = Sha256::digest([source, go].concat()).iter().map(|b| format!("{b:02x}")).collect();
                (hash[..12] != *tag).then(|| format!("{reference}: its source hashes to {}", &hash[..12]))
            }
            None if repo.ends_with("/prometheus-adapter") => {
                let container = docker_said(&["create", reference.as_str()]).trim().to_owned();
                let out = std::env::temp_dir().join(format!("cbam-buildinfo-{}", std::process::id()));
                let copied = docker_said(&["cp", &format!("{container}:/adapter"), out.to_str().expect("UTF-8")]);
                docker_said(&["rm", "-f", &container]);
                let info =
                    std::process::Command::new("go").args(["version", "-m"]).arg(&out).output().expect("go version -m");
                let _ = std::fs::remove_file(&out);
                let info = String::from_utf8_lossy(&info.stdout).into_owned();
                let says = format!("sigs.k8s.io/prometheus-adapter\t{tag}\t");
                (!info.contains(&says)).then(|| format!("{reference}: build info {info:?} {copied}, not {says:?}"))
            }
            None => Some(format!("{reference}: no way to read its version is known (add it to version_command)")),
        };
        wrong.extend(said);
    }
    assert!(wrong.is_empty(), "images whose tag is not their content:\n{}", wrong.join("\n"));
}
