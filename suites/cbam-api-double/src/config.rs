//! Configuration from the environment the manifests give the pod: the
//! ConfigMap `cbam-api-config` (envFrom) and the Secret `cbam-api-secrets`.

use std::path::PathBuf;
use std::time::Duration;

use crate::cors::CorsPolicy;
use crate::logging::Level;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {key}: {reason} (found {value:?})")]
    Invalid { key: &'static str, value: String, reason: &'static str },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub app_env: String,
    pub log_level: Level,
    pub api_docs: bool,
    pub tracing: bool,
    pub metrics_path: String,
    pub volumes: Vec<(&'static str, PathBuf)>,
    pub max_concurrent_runs: usize,
    pub memory_budget_mib: u64,
    pub cors: CorsPolicy,
    pub security_headers: Vec<(String, String)>,
    /// Secret keys and whether each is set; values are never kept.
    pub secrets: Vec<(&'static str, bool)>,
    /// After SIGTERM: keep serving (unready) this long so endpoints drain.
    pub shutdown_delay: Duration,
    /// After SIGTERM: give in-flight runs until this much time has passed.
    pub shutdown_timeout: Duration,
    /// Work before the port is bound (the real API loads its reference
    /// tables first, as uvicorn binds only after the app's startup): a pod
    /// that gets traffic before it is Ready refuses connections meanwhile.
    /// 3 s by default: with 1 s the refusing window could close before
    /// kube-proxy and Traefik had routed to the new pod (one CI run,
    /// 2026-12-05 on b99ab5e, saw no refused request in a rollout without
    /// any readiness gate), so the `no-readiness-gate` mutation was a coin toss.
    pub startup_delay: Duration,
    /// The pod's name (Kubernetes sets HOSTNAME), sent as `x-served-by` so a
    /// client can tell which pod answered.
    pub served_by: Option<String>,
}

const HEADER_PREFIX: &str = "SECURITY_HEADER_";
pub const SECRET_KEYS: [&str; 2] = ["DATABASE_URL", "REDIS_URL"];

/// Reads settings through `get`, so tests need not touch the process environment.
pub struct Source<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> std::fmt::Debug for Source<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source(..)")
    }
}

impl<F: Fn(&str) -> Option<String>> Source<F> {
    fn text(&self, key: &str, default: &str) -> String {
        (self.0)(key).unwrap_or_else(|| default.to_owned())
    }

    fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match (self.0)(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(value) => Err(ConfigError::Invalid { key, value, reason: "expected true or false" }),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &'static str, default: T) -> Result<T, ConfigError> {
        match (self.0)(key) {
            None => Ok(default),
            Some(value) => {
                value.trim().parse().map_err(|_| ConfigError::Invalid { key, value, reason: "expected a number" })
            }
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load(&Source(|key: &str| std::env::var(key).ok()), &vars)
    }

    /// `vars` lists every variable, to find the SECURITY_HEADER_* keys.
    pub fn load<F: Fn(&str) -> Option<String>>(
        src: &Source<F>,
        vars: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let port: u16 = src.number("PORT", 8000)?;
        let level_text = src.text("LOG_LEVEL", "INFO");
        let log_level = Level::parse(&level_text).ok_or(ConfigError::Invalid {
            key: "LOG_LEVEL",
            value: level_text,
            reason: "expected DEBUG, INFO, WARNING or ERROR",
        })?;
        let cors = CorsPolicy::from_settings(
            &src.text("CORS_POLICY", "strict"),
            &src.text("CORS_ALLOWED_ORIGINS", ""),
            &src.text("CORS_ALLOWED_METHODS", "GET,POST"),
            &src.text("CORS_ALLOWED_HEADERS", "Authorization,Content-Type"),
            src.flag("CORS_ALLOW_CREDENTIALS", false)?,
            src.number("CORS_MAX_AGE", 600)?,
        )
        .map_err(|reason| ConfigError::Invalid {
            key: "CORS_POLICY",
            value: src.text("CORS_POLICY", ""),
            reason,
        })?;
        let mut security_headers: Vec<(String, String)> = vars
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(HEADER_PREFIX).map(|name| (header_name(name), v.clone())))
            .collect();
        security_headers.sort();
        let dir = |key: &'static str, default: &str| (key, PathBuf::from(src.text(key, default)));
        Ok(Config {
            listen: format!("{}:{port}", src.text("LISTEN_HOST", "0.0.0.0")),
            app_env: src.text("APP_ENV", "production"),
            log_level,
            api_docs: src.flag("API_DOCS_ENABLED", false)?,
            tracing: src.flag("TRACING_ENABLED", false)?,
            metrics_path: src.text("METRICS_PATH", "/metrics"),
            volumes: vec![
                dir("DATA_DIR", "/app/data"),
                dir("LOGS_DIR", "/app/logs"),
                dir("OUTPUT_DIR", "/app/output"),
                dir("UPLOADS_DIR", "/app/uploads"),
            ],
            max_concurrent_runs: src.number("PIPELINE_MAX_CONCURRENT_RUNS", 8)?,
            memory_budget_mib: src.number("PIPELINE_MEMORY_BUDGET_MIB", 512)?,
            cors,
            security_headers,
            secrets: SECRET_KEYS.iter().map(|k| (*k, (src.0)(k).is_some_and(|v| !v.is_empty()))).collect(),
            shutdown_delay: Duration::from_secs_f64(src.number("SHUTDOWN_DELAY_SECONDS", 5.0)?),
            shutdown_timeout: Duration::from_secs_f64(src.number("SHUTDOWN_TIMEOUT_SECONDS", 25.0)?),
            startup_delay: Duration::from_secs_f64(src.number("STARTUP_SECONDS", 3.0)?),
            served_by: (src.0)("HOSTNAME").filter(|h| !h.is_empty()),
        })
    }
}

/// `X_FRAME_OPTIONS` -> `X-Frame-Options`
fn header_name(key: &str) -> String {
    key.split('_')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_come_back_in_http_case() {
        assert_eq!(header_name("X_FRAME_OPTIONS"), "X-Frame-Options");
        assert_eq!(header_name("CONTENT_SECURITY_POLICY"), "Content-Security-Policy");
    }

    #[test]
    fn a_bad_flag_names_its_key() {
        let src = Source(|k: &str| (k == "API_DOCS_ENABLED").then(|| "yes".to_owned()));
        let err = Config::load(&src, &[]).expect_err("invalid flag");
        assert!(err.to_string().contains("API_DOCS_ENABLED"), "{err}");
    }
}
