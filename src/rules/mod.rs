//! Detection rules: Elastic detection-rules TOML in, compiled [`Rule`]s indexed by category out.
//!
//! [`load`] reads files and directories and reports every rule as loaded, unsupported, skipped
//! (not EQL) or in error — with the rule file's own line and column — never silently dropping one.
//! [`RuleSet`] holds the rules that compiled and hands each event only to the rules that can match
//! it; stateful rules (sequences, samples, pipes) keep what they remember in a [`RuleState`]
//! owned by the caller. [`coverage`] tells, per rule, whether this sensor's sources can ever
//! feed it. [`builtin`] is the rule pack compiled into the binary.

pub mod builtin;
mod candidates;
pub mod coverage;
pub mod load;
pub mod ruleset;
mod toml_string;

use std::fmt;
use std::path::PathBuf;

use crate::eql::{Compiled, MatchKind, Program};

pub use load::{load_builtin, load_path, Outcome, Problem, Report};
pub use ruleset::{RuleSet, RuleState};

/// Elastic's severity levels and the `event.severity` number each maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// `event.severity`: the numbers Elastic Security uses for its alerts.
    pub fn score(self) -> u8 {
        match self {
            Severity::Low => 21,
            Severity::Medium => 47,
            Severity::High => 73,
            Severity::Critical => 99,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ATT&CK reference (`tactic`, `technique` or `subtechnique`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreatRef {
    pub id: String,
    pub name: String,
    pub reference: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Technique {
    pub technique: ThreatRef,
    pub subtechniques: Vec<ThreatRef>,
}

/// One `[[rule.threat]]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Threat {
    pub framework: String,
    pub tactic: Option<ThreatRef>,
    pub techniques: Vec<Technique>,
}

/// Where a rule came from: a built-in file or a file under a `--rules` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into the binary; the file name under `src/rules/builtin/`.
    Builtin(&'static str),
    File {
        path: PathBuf,
        /// The `--rules` argument the file was found under (the alert's `rule.ruleset`).
        root: PathBuf,
    },
}

impl Origin {
    /// `builtin` or the `--rules` path as given.
    pub fn ruleset(&self) -> String {
        match self {
            Origin::Builtin(_) => "builtin".to_owned(),
            Origin::File { root, .. } => root.display().to_string(),
        }
    }

    pub fn is_builtin(&self) -> bool {
        matches!(self, Origin::Builtin(_))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin(name) => write!(f, "builtin:{name}"),
            Origin::File { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// What a rule says about itself (everything but the compiled query).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleMeta {
    pub rule_id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    /// 0–100.
    pub risk_score: u8,
    /// The rule's `type` (`eql`).
    pub rule_type: String,
    pub language: String,
    /// The EQL text, exactly as decoded from the TOML string.
    pub query: String,
    /// At most this many alerts per `interval` (default 100).
    pub max_signals: u32,
    /// As written (default `5m`).
    pub interval: String,
    pub interval_ns: i64,
    pub from: Option<String>,
    pub author: Vec<String>,
    pub license: Option<String>,
    pub references: Vec<String>,
    pub tags: Vec<String>,
    /// `rule.version` when the file has one; Elastic's files keep versions in a lock file.
    pub version: Option<u32>,
    pub maturity: Option<String>,
    pub threat: Vec<Threat>,
}

/// A loaded rule: its metadata and its compiled query.
#[derive(Debug)]
pub struct Rule {
    pub meta: RuleMeta,
    pub origin: Origin,
    pub(crate) query: Compiled,
    /// Position in its [`RuleSet`], for per-rule state such as throttling.
    pub(crate) index: usize,
}

impl Rule {
    /// The compiled query, of any shape.
    pub fn query(&self) -> &Compiled {
        &self.query
    }

    /// The program of a single-event rule; `None` for sequences and samples.
    pub fn program(&self) -> Option<&Program> {
        self.query.as_event()
    }

    /// The event category a single-event query selects; `None` for `any` and for sequences and
    /// samples (see [`Rule::shape`]).
    pub fn category(&self) -> Option<&str> {
        self.query.as_event().and_then(Program::category)
    }

    /// `process`, `any`, `sequence(process,network)`, `sample(file)`: what the query selects.
    pub fn shape(&self) -> String {
        let cats = match self.query.categories() {
            Some(c) => c.join(","),
            None => "any".to_owned(),
        };
        match self.query.kind() {
            MatchKind::Event => cats,
            kind => format!("{}({cats})", kind.as_str()),
        }
    }

    /// Dense index within the owning [`RuleSet`] (0..len).
    pub fn index(&self) -> usize {
        self.index
    }
}
