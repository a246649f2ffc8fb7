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
    let mut values = cbam_model::manifest::values(&origin, &annotated.yaml)?;
    let origins = source_map::take_origins(&mut values, annotated.wrapper.path(), root);
    let yaml = source_map::strip_origins(&annotated.yaml);
    let objects = cbam_model::manifest::decode_all(&origin, values)?;
    Ok(Rendered { objects, yaml, time: started.elapsed(), origins })
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
        let renders: Vec<_> = rendered_envs
            .iter()
            .map(|&env| (env, scope.spawn(move || render(&options.kustomize, &options.infra, root, env))))
            .collect();
        let expectations = Expectations::load(&options.fixtures, &options.envs)?;
        let summary = read(&options.infra.join(SUMMARY_FILE))?;
        let mut governance = Vec::new();
        for file in &expectations.governance.files {
            let path = options.infra.join(file);
            governance.extend(parse(&path.display().to_string(), &read(&path)?)?);
        }
        let mut asked = Vec::new();
        let mut peers: Vec<(Env, Peer)> = Vec::new();
        for (env, handle) in renders {
            let result = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
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
