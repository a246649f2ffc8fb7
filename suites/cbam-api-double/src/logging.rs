//! JSON-lines logs on stdout, filtered by LOG_LEVEL.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARNING" | "WARN" => Some(Level::Warning),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Logger {
    pub threshold: Level,
}

impl Logger {
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.threshold
    }

    /// Writes one line: {"ts": .., "level": .., "msg": .., ...fields}.
    pub fn log(&self, level: Level, msg: &str, fields: Value) {
        if !self.enabled(level) {
            return;
        }
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        let mut line = Map::new();
        line.insert("ts".into(), ts.into());
        line.insert("level".into(), level.as_str().into());
        line.insert("msg".into(), msg.into());
        if let Value::Object(extra) = fields {
            line.extend(extra);
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout must not take the server down.
        let _ = writeln!(out, "{}", Value::Object(line));
    }
}
