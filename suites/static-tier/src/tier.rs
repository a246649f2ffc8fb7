//! The static tier: render every requested overlay (in parallel), decode it
//! strictly, and run every check against the fixtures. No cluster involved.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cbam_model::environment::Env;
use cbam_model::fixtures::{Expectations, FixtureError};
use cbam_model::manifest::{ManifestError, Object, parse};
use cbam_model::outcome::{Outcome, Recorder};
use cbam_model::run::{Baseline, EnvResult, StaticRun};
use cbam_model::source::SUMMARY_FILE;

use crate::checks::hpa_timeline::{describe, predict};
use crate::checks::{CHECKS, Scope};
use crate::context::{Context, Peer};
use crate::render::{Kustomize, RenderError};
use crate::source_map::{self, SourceMap};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("find {what} {path}: no such directory")]
    MissingDir { what: &'static str, path: PathBuf },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

#[derive(Debug, Clone)]
pub struct StaticOptions {
    pub envs: Vec<Env>,
    pub infra: PathBuf,
    pub fixtures: PathBuf,
    pub kustomize: Kustomize,
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Read { path: path.to_owned(), source })
}

fn require_dir(what: &'static str, path: &Path) -> Result<(), InputError> {
    if path.is_dir() { Ok(()) } else { Err(InputError::MissingDir { what, path: path.to_owned() }) }
}

/// One overlay rendered: its objects, the build output (without the
/// origin annotations asked for), its time, and each object's origin file.
struct Rendered {
    objects: Vec<Object>,
    yaml: String,
    time: Duration,
    origins: Vec<(String, String, String)>,
}

/// The overlays of the infra tree `infra` (as given, for messages); `root`
/// is the same tree canonical, what kustomize's origin paths resolve in.
fn overlay_dir(infra: &Path, env: Env) -> PathBuf {
    infra.join("kustomize/overlays").join(env.as_str())
}

fn render(kustomize: &Kustomize, infra: &Path, root: &Path, env: Env) -> Result<Rendered, InputError> {
    let started = Instant::now();
    let overlay = overlay_dir(infra, env);
    require_dir("overlay", &overlay)?;
    let annotated = kustomize.build_annotated(&overlay)?;
    let origin = format!("overlay {env} ({})", overlay.display());
    // One parse: the origins are taken out, then the objects decoded.
    let values = cbam_model::manifest::values(&origin, &annotated.yaml)?;
    Ok(rendered(&origin, values, &annotated.yaml, annotated.wrapper.path(), root, started.elapsed())?)
}

/// One overlay's documents (parsed, and their text) as the tier keeps them:
/// each object's origin file taken out of its annotations, the text without
/// them, the objects decoded.
fn rendered(
    origin: &str,
    mut values: Vec<(usize, serde_json::Value)>,
    text: &str,
    wrapper: &Path,
    root: &Path,
    time: Duration,
) -> Result<Rendered, ManifestError> {
    let origins = source_map::take_origins(&mut values, wrapper, root);
    let yaml = source_map::strip_origins(text);
    let objects = cbam_model::manifest::decode_all(origin, values)?;
    Ok(Rendered { objects, yaml, time, origins })
}

/// Every environment's overlay rendered. In one kustomize process when
/// each overlay sets a namespace of its own: its objects are told apart by
/// the namespace its own transformer gave them, and a document that is not
/// told apart exactly (or a failed build) falls back to one process per
/// overlay, which also names the overlay that failed.
fn render_all(
    kustomize: &Kustomize,
    infra: &Path,
    root: &Path,
    envs: &[Env],
) -> Vec<(Env, Result<Rendered, InputError>)> {
    if let Some(rendered) = render_together(kustomize, infra, root, envs) {
        return rendered.into_iter().map(|(env, r)| (env, Ok(r))).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            envs.iter().map(|&env| (env, scope.spawn(move || render(kustomize, infra, root, env)))).collect();
        handles
            .into_iter()
            .map(|(env, handle)| (env, handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))))
            .collect()
    })
}

/// The `namespace:` an overlay's kustomization sets, if it sets one.
fn overlay_namespace(dir: &Path) -> Option<String> {
    let text = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .find_map(|name| std::fs::read_to_string(dir.join(name)).ok())?;
    let value: serde_json::Value = serde_norway::from_str(&text).ok()?;
    value.get("namespace")?.as_str().map(str::to_owned)
}

/// The documents of a kustomize build, as text (it writes `---` between them).
fn document_texts(yaml: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in yaml.lines() {
        if line == "---" {
            documents.push(String::new());
        } else if let Some(current) = documents.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.retain(|d| !d.trim().is_empty());
    documents
}

/// Which namespace a rendered object belongs to: its own, or for a
/// Namespace object its name.
fn namespace_of(value: &serde_json::Value) -> Option<&str> {
    if value.get("kind").and_then(serde_json::Value::as_str) == Some("Namespace") {
        value.pointer("/metadata/name")?.as_str()
    } else {
        value.pointer("/metadata/namespace")?.as_str()
    }
}

/// One overlay's share of a build together: its documents, parsed and as text.
type Part = (Vec<(usize, serde_json::Value)>, Vec<String>);

fn render_together(kustomize: &Kustomize, infra: &Path, root: &Path, envs: &[Env]) -> Option<Vec<(Env, Rendered)>> {
    if envs.len() < 2 {
        return None;
    }
    let started = Instant::now();
    let overlays: Vec<PathBuf> = envs.iter().map(|&env| overlay_dir(infra, env)).collect();
    let mut owner = std::collections::BTreeMap::new();
    for (k, dir) in overlays.iter().enumerate() {
        if owner.insert(overlay_namespace(dir)?, k).is_some() {
            return None;
        }
    }
    let dirs: Vec<&Path> = overlays.iter().map(PathBuf::as_path).collect();
    let annotated = kustomize.build_annotated_many(&dirs).ok()?;
    let values = cbam_model::manifest::values("the overlays together", &annotated.yaml).ok()?;
    let texts = document_texts(&annotated.yaml);
    if texts.len() != values.len() {
        return None;
    }
    let mut parts: Vec<Part> = vec![(Vec::new(), Vec::new()); envs.len()];
    for ((_, value), text) in values.into_iter().zip(texts) {
        let k = *owner.get(namespace_of(&value)?)?;
        let (values, texts) = &mut parts[k];
        values.push((values.len(), value));
        texts.push(text);
    }
    let time = started.elapsed();
    let mut together = Vec::new();
    for ((&env, dir), (values, texts)) in envs.iter().zip(&overlays).zip(parts) {
        let origin = format!("overlay {env} ({})", dir.display());
        let text = texts.join("---\n");
        together.push((env, rendered(&origin, values, &text, annotated.wrapper.path(), root, time).ok()?));
    }
    Some(together)
}

/// Renders `infra`'s overlay for each of `envs` (a baseline release).
pub fn render_baseline(kustomize: &Kustomize, infra: &Path, envs: &[Env]) -> Result<Baseline, InputError> {
    require_dir("baseline infra tree", infra)?;
    let root = infra.canonicalize().map_err(|source| InputError::Read { path: infra.to_owned(), source })?;
    let mut objects = std::collections::BTreeMap::new();
    for &env in envs {
        objects.insert(env, render(kustomize, infra, &root, env)?.objects);
    }
    Ok(Baseline { dir: infra.to_owned(), objects })
}

fn run_checks(cx: &Context) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for check in CHECKS {
        if check.scope == Scope::Governed && !cx.fixture.governance {
            continue;
        }
        let mut recorder = Recorder::new(cx.env, check.id);
        (check.run)(cx, &mut recorder);
        if recorder.outcomes.is_empty() {
            // A check that compared nothing proved nothing: that is a failure.
            recorder.record("harness", "facts compared", "at least one", "none", false);
        }
        outcomes.append(&mut recorder.outcomes);
    }
    outcomes
}

pub fn run(options: &StaticOptions) -> Result<StaticRun, InputError> {
    let started = Instant::now();
    require_dir("infra directory", &options.infra)?;
    require_dir("fixtures directory", &options.fixtures)?;
    // Every environment with a fixture is rendered, asked for or not: the
    // env-contract check compares each one asked for with all the others.
    let mut rendered_envs = options.envs.clone();
    for env in Env::discover(&options.fixtures).unwrap_or_default() {
        if !rendered_envs.contains(&env) {
            rendered_envs.push(env);
        }
    }
    // Canonical once: kustomize's origin paths resolve in it.
    let root =
        options.infra.canonicalize().map_err(|source| InputError::Read { path: options.infra.clone(), source })?;
    let root = root.as_path();
    let version = std::thread::scope(|scope| {
        let version = scope.spawn(|| options.kustomize.version());
        let renders = scope.spawn(|| render_all(&options.kustomize, &options.infra, root, &rendered_envs));
        let expectations = Expectations::load(&options.fixtures, &options.envs)?;
        let summary = read(&options.infra.join(SUMMARY_FILE))?;
        let mut governance = Vec::new();
        for file in &expectations.governance.files {
            let path = options.infra.join(file);
            governance.extend(parse(&path.display().to_string(), &read(&path)?)?);
        }
        let mut asked = Vec::new();
        let mut peers: Vec<(Env, Peer)> = Vec::new();
        for (env, result) in renders.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
            if options.envs.contains(&env) {
                let rendered = result?;
                peers.push((env, Ok(rendered.objects.clone())));
                asked.push((env, rendered));
            } else {
                peers.push((env, result.map(|r| r.objects).map_err(Box::from)));
            }
        }
        let mut results = Vec::new();
        for (env, rendered) in asked {
            let Rendered { objects: overlay, yaml: rendered, time: render_time, origins } = rendered;
            let fixture = &expectations.environments[&env];
            let cx = Context {
                env,
                fixture,
                workload: &expectations.workload,
                governance_fixture: &expectations.governance,
                overlay: &overlay,
                governance: &governance,
                summary: &summary,
                peers: &peers,
                env_contract: &expectations.env_contract,
            };
            let hpa_timeline = fixture.governance.then(|| cx.hpa()).flatten().map(|hpa| {
                let (up, down) = predict(hpa);
                let spec = hpa.spec.as_ref();
                let min = spec.and_then(|s| s.min_replicas).unwrap_or(1);
                let max = spec.map_or(0, |s| s.max_replicas);
                (describe(min, &up), describe(max, &down))
            });
            let mut outcomes = run_checks(&cx);
            let dir = overlay_dir(root, env);
            let sources = SourceMap::build(root, &dir, &origins, &expectations.governance.files, &summary);
            for outcome in &mut outcomes {
                outcome.source = sources.locate(outcome).map(|s| s.under(&options.infra));
            }
            results.push(EnvResult {
                env,
                outcomes,
                object_count: overlay.len(),
                objects: overlay,
                rendered,
                render_time,
                hpa_timeline,
            });
        }
        let version = version.join().unwrap_or_else(|_| "unknown".to_owned());
        Ok::<_, InputError>((results, version, governance, expectations))
    })?;
    let (results, kustomize, governance, expectations) = version;
    Ok(StaticRun { results, governance, expectations, kustomize, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir)
    }

    fn envs() -> Vec<Env> {
        Env::discover(&repo("fixtures")).expect("fixture environments")
    }

    #[test]
    fn together_each_overlay_gets_what_its_own_build_gives() {
        let (infra, kustomize) = (repo("infra"), Kustomize::locate(None).expect("kustomize on PATH"));
        let root = infra.canonicalize().expect("infra");
        let together = render_together(&kustomize, &infra, &root, &envs()).expect("the overlays set their namespaces");
        assert_eq!(together.len(), envs().len());
        for (env, r) in together {
            let alone = render(&kustomize, &infra, &root, env).expect("renders alone");
            assert_eq!(r.yaml, alone.yaml, "{env}: the same documents, in the same order");
            assert_eq!(r.origins, alone.origins, "{env}: the same origins");
            assert_eq!(format!("{:?}", r.objects), format!("{:?}", alone.objects), "{env}: the same objects");
        }
    }

    #[test]
    fn overlays_sharing_a_namespace_are_rendered_apart() {
        let copy = tempfile::tempdir().expect("temp dir");
        let infra = copy.path().join("infra");
        let status = std::process::Command::new("cp").arg("-r").arg(repo("infra")).arg(&infra).status();
        assert!(status.is_ok_and(|s| s.success()), "copy infra");
        let (staging, dev) = (infra.join("kustomize/overlays/staging"), infra.join("kustomize/overlays/dev"));
        let namespace = overlay_namespace(&staging).expect("staging sets a namespace");
        let path = dev.join("kustomization.yaml");
        let text = std::fs::read_to_string(&path).expect("dev kustomization");
        let theirs = overlay_namespace(&dev).expect("dev sets a namespace");
        std::fs::write(&path, text.replace(&format!("namespace: {theirs}"), &format!("namespace: {namespace}")))
            .expect("write");
        let (kustomize, root) = (Kustomize::locate(None).expect("kustomize"), infra.canonicalize().expect("infra"));
        assert!(render_together(&kustomize, &infra, &root, &envs()).is_none(), "not told apart: rendered apart");
        let apart = render_all(&kustomize, &infra, &root, &envs());
        assert!(apart.iter().all(|(_, r)| r.is_ok()), "each overlay still renders on its own");
    }

    #[test]
    fn documents_are_split_at_kustomizes_separator_only() {
        let yaml = "a: 1\ntext: |\n  ---\n  b\n---\nc: 2\n";
        assert_eq!(document_texts(yaml), vec!["a: 1\ntext: |\n  ---\n  b\n".to_owned(), "c: 2\n".to_owned()]);
    }
}
