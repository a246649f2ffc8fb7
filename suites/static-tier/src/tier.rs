//! The static tier: render every requested overlay (in parallel), decode it
//! strictly, and run every check against the fixtures. No cluster involved.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::checks::hpa_timeline::{describe, predict};
use crate::checks::{CHECKS, Scope};
use crate::context::Context;
use crate::environment::Env;
use crate::fixtures::{Expectations, FixtureError};
use crate::manifest::{ManifestError, Object, parse};
use crate::outcome::{Outcome, Recorder, Status};
use crate::render::{Kustomize, RenderError};
use crate::source_map::{self, SourceMap};

pub const SUMMARY_FILE: &str = "INFRASTRUCTURE_SUMMARY.md";

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

/// The static tier's result for one environment.
#[derive(Debug)]
pub struct EnvResult {
    pub env: Env,
    pub outcomes: Vec<Outcome>,
    pub rendered: String,
    /// The overlay's objects, typed (what the live tier applies).
    pub(crate) objects: Vec<Object>,
    pub object_count: usize,
    pub render_time: Duration,
    /// Predicted HPA timelines (scale-up, scale-down), where an HPA governs the environment.
    pub hpa_timeline: Option<(String, String)>,
}

#[derive(Debug)]
pub struct StaticRun {
    pub results: Vec<EnvResult>,
    /// infra/{resourcequota,limitrange,pdb,hpa}.yaml, typed, in apply order.
    pub(crate) governance: Vec<Object>,
    pub(crate) expectations: Expectations,
    pub kustomize: String,
    pub elapsed: Duration,
}

impl StaticRun {
    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.results.iter().flat_map(|r| r.outcomes.iter())
    }

    pub fn failed(&self) -> usize {
        self.outcomes().filter(|o| o.status == Status::Fail).count()
    }

    /// The ids of the checks that failed on `env`, in report order.
    pub fn failed_checks(&self, env: Env) -> Vec<&'static str> {
        let mut ids: Vec<&'static str> =
            self.outcomes().filter(|o| o.env == env && o.status == Status::Fail).map(|o| o.check).collect();
        ids.dedup();
        ids
    }
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
    let mut values = crate::manifest::values(&origin, &annotated.yaml)?;
    let origins = source_map::take_origins(&mut values, annotated.wrapper.path(), root);
    let yaml = source_map::strip_origins(&annotated.yaml);
    let objects = crate::manifest::decode_all(&origin, values)?;
    Ok(Rendered { objects, yaml, time: started.elapsed(), origins })
}

/// A previous release's overlays (`--baseline DIR`), rendered for the live
/// tier's rollout from it and back; the static tier does not judge them.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub dir: PathBuf,
    pub(crate) objects: std::collections::BTreeMap<Env, Vec<Object>>,
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
        let mut peers: Vec<(Env, Result<Vec<Object>, String>)> = Vec::new();
        for (env, handle) in renders {
            let result = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if options.envs.contains(&env) {
                let rendered = result?;
                peers.push((env, Ok(rendered.objects.clone())));
                asked.push((env, rendered));
            } else {
                peers.push((env, result.map(|r| r.objects).map_err(|e| crate::cli::chain(&e))));
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
