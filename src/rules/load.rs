//! Detection-rules TOML → [`Rule`]s, with a [`Report`] for every file read.
//!
//! Each file ends in exactly one [`Outcome`]: compiled, unsupported (valid EQL the engine does not
//! evaluate yet), skipped (not an EQL rule, or a duplicate), or an error. Errors carry the rule
//! file's line and column — for a query error, of the offending token inside the `query` string.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use super::toml_string::source_offsets;
use super::{Origin, Rule, RuleMeta, Severity, Technique, Threat, ThreatRef};
use crate::eql::ast::Span;
use crate::eql::error::{caret_snippet, line_col};
use crate::eql::{self, ErrorKind};

/// Defaults Elastic's detection engine applies when a rule leaves them out.
pub const DEFAULT_MAX_SIGNALS: u32 = 100;
pub const DEFAULT_INTERVAL: &str = "5m";

/// Directories nested deeper than this are not walked (a guard against symlink loops).
const MAX_DIR_DEPTH: usize = 32;

/// A `--rules` path that cannot be read at all (as opposed to one bad file inside it).
#[derive(Debug, Error)]
#[error("cannot read rules from {}: {source}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What happened to one rule file.
#[derive(Debug)]
pub struct Report {
    pub origin: Origin,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub enum Outcome {
    Ok(Box<Rule>),
    /// Valid EQL this engine cannot evaluate yet (e.g. sequences), with where and why.
    Unsupported {
        meta: Box<RuleMeta>,
        problem: Problem,
    },
    /// Not an EQL rule, or a rule id already loaded.
    Skipped {
        rule_id: Option<String>,
        name: Option<String>,
        reason: String,
    },
    /// Broken TOML, a missing or mistyped field, or a query error. The first problem is the
    /// one to fix first; more follow when the parser found several.
    Error {
        name: Option<String>,
        problems: Vec<Problem>,
    },
}

impl Outcome {
    /// The word `rules check` prints: `ok`, `unsupported`, `skipped`, `error`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Unsupported { .. } => "unsupported",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Error { .. } => "error",
        }
    }

    /// The rule's name, when the file got far enough to have one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Outcome::Ok(rule) => Some(&rule.meta.name),
            Outcome::Unsupported { meta, .. } => Some(&meta.name),
            Outcome::Skipped { name, .. } | Outcome::Error { name, .. } => name.as_deref(),
        }
    }

    /// The rule id, when known.
    pub fn rule_id(&self) -> Option<&str> {
        match self {
            Outcome::Ok(rule) => Some(&rule.meta.rule_id),
            Outcome::Unsupported { meta, .. } => Some(&meta.rule_id),
            Outcome::Skipped { rule_id, .. } => rule_id.as_deref(),
            Outcome::Error { .. } => None,
        }
    }
}

/// One problem at a place in the rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and character column in the rule file; `None` when the file could not be
    /// read at all.
    pub position: Option<(usize, usize)>,
    pub message: String,
    /// The offending line with carets under the problem (empty without a position).
    pub snippet: String,
}

impl Problem {
    fn at(src: &str, range: Range<usize>, message: impl Into<String>) -> Problem {
        let span = Span::new(range.start, range.end.max(range.start));
        Problem {
            position: Some(line_col(src, range.start)),
            message: message.into(),
            snippet: caret_snippet(src, span),
        }
    }

    /// `FILE:LINE:COL: message` (or `FILE: message` without a position).
    pub fn located(&self, origin: &Origin) -> String {
        match self.position {
            Some((line, col)) => format!("{origin}:{line}:{col}: {}", self.message),
            None => format!("{origin}: {}", self.message),
        }
    }
}

/// Loads every built-in rule.
pub fn load_builtin(options: &eql::Options) -> Vec<Report> {
    super::builtin::FILES
        .iter()
        .map(|&(name, src)| load_source(Origin::Builtin(name), src, options))
        .collect()
}

/// Loads a rule file, or every `*.toml` under a directory (recursively, in path order).
pub fn load_path(path: &Path, options: &eql::Options) -> Result<Vec<Report>, LoadError> {
    let err = |source| LoadError {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(err)?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, 0, &mut files).map_err(err)?;
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    Ok(files
        .into_iter()
        .map(|file| {
            let origin = Origin::File {
                path: file.clone(),
                root: path.to_owned(),
            };
            match fs::read_to_string(&file) {
                Ok(src) => load_source(origin, &src, options),
                Err(e) => Report {
                    origin,
                    outcome: Outcome::Error {
                        name: None,
                        problems: vec![Problem {
                            position: None,
                            message: format!("cannot read: {e}"),
                            snippet: String::new(),
                        }],
                    },
                },
            }
        })
        .collect())
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if depth > MAX_DIR_DEPTH {
        log::warn!("{}: nested too deep, not searched for rules", dir.display());
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        // fs::metadata follows symlinks, so a linked rules folder is searched too.
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, depth + 1, out)?,
            Ok(_) if path.extension().is_some_and(|e| e == "toml") => out.push(path),
            Ok(_) => {}
            Err(e) => log::warn!("{}: {e}", path.display()),
        }
    }
    Ok(())
}

/// Loads every built-in rule (unless `builtin` is false), then every `--rules` path, and marks
/// duplicate rule ids: a file rule replaces a built-in rule with the same id, and among files
/// the first one (in argument, then path order) wins. Neither is silent: the loser is
/// reported as skipped.
pub fn load_all(
    builtin: bool,
    paths: &[PathBuf],
    options: &eql::Options,
) -> Result<Vec<Report>, LoadError> {
    let mut reports = if builtin {
        load_builtin(options)
    } else {
        Vec::new()
    };
    for path in paths {
        reports.extend(load_path(path, options)?);
    }
    mark_duplicates(&mut reports);
    Ok(reports)
}

fn mark_duplicates(reports: &mut [Report]) {
    let mut first: std::collections::HashMap<String, usize> = Default::default();
    for i in 0..reports.len() {
        let Outcome::Ok(rule) = &reports[i].outcome else {
            continue;
        };
        let id = rule.meta.rule_id.clone();
        let Some(&j) = first.get(&id) else {
            first.insert(id, i);
            continue;
        };
        // The loser is the later one, unless the earlier one is built in.
        let (winner, loser) = if reports[j].origin.is_builtin() && !reports[i].origin.is_builtin() {
            first.insert(id.clone(), i);
            (i, j)
        } else {
            (j, i)
        };
        let why = if reports[loser].origin.is_builtin() {
            format!("overridden by {}", reports[winner].origin)
        } else {
            format!(
                "duplicate rule_id {id}, already loaded from {}",
                reports[winner].origin
            )
        };
        let name = reports[loser].outcome.name().map(str::to_owned);
        reports[loser].outcome = Outcome::Skipped {
            rule_id: Some(id),
            name,
            reason: why,
        };
    }
}

/// Loads one rule from its TOML text.
pub fn load_source(origin: Origin, src: &str, options: &eql::Options) -> Report {
    let outcome = match classify(src) {
        Err(problem) => Outcome::Error {
            name: None,
            problems: vec![problem],
        },
        Ok(Some(skipped)) => skipped,
        Ok(None) => match toml::from_str::<RawFile>(src) {
            Err(e) => Outcome::Error {
                name: None,
                problems: vec![toml_problem(src, &e)],
            },
            Ok(raw) => build(src, raw, options),
        },
    };
    Report { origin, outcome }.finish()
}

fn toml_problem(src: &str, e: &toml::de::Error) -> Problem {
    let message = e.message().trim().to_owned();
    match e.span() {
        Some(range) => Problem::at(src, range, message),
        None => Problem::at(src, 0..0, message),
    }
}

/// Just enough of a rule to decide whether it is EQL, so other rule types are skipped for the
/// right reason instead of failing on fields only EQL rules need.
#[derive(Deserialize)]
struct Probe {
    rule: Option<Spanned<ProbeRule>>,
}

#[derive(Deserialize)]
struct ProbeRule {
    #[serde(rename = "type")]
    rule_type: Option<String>,
    language: Option<String>,
    name: Option<String>,
    rule_id: Option<String>,
}

/// `Ok(None)` for an EQL rule, `Ok(Some(Skipped))` for another kind, `Err` for a file that is
/// not TOML or has no way to tell.
fn classify(src: &str) -> Result<Option<Outcome>, Problem> {
    let probe: Probe = toml::from_str(src).map_err(|e| toml_problem(src, &e))?;
    let Some(rule) = probe.rule else {
        return Err(Problem::at(src, 0..0, "no [rule] table"));
    };
    let span = rule.span();
    let rule = rule.into_inner();
    let is_eql = |v: &Option<String>| v.as_deref().is_none_or(|v| v == "eql");
    if rule.rule_type.is_none() && rule.language.is_none() {
        return Err(Problem::at(
            src,
            span.start..span.start,
            "the rule has neither `type` nor `language`; expected type = \"eql\"",
        ));
    }
    if is_eql(&rule.rule_type) && is_eql(&rule.language) {
        return Ok(None);
    }
    let describe = |what: &str, v: &Option<String>| v.as_ref().map(|v| format!("{what} \"{v}\""));
    let kind: Vec<String> = [
        describe("type", &rule.rule_type),
        describe("language", &rule.language),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(Some(Outcome::Skipped {
        rule_id: rule.rule_id,
        name: rule.name,
        reason: format!("{}: only EQL rules are evaluated", kind.join(", ")),
    }))
}

#[derive(Deserialize)]
struct RawFile {
    metadata: Option<RawMetadata>,
    rule: Spanned<RawRule>,
}

#[derive(Deserialize)]
struct RawMetadata {
    maturity: Option<String>,
}

#[derive(Deserialize)]
struct RawRule {
    rule_id: String,
    name: String,
    #[serde(default)]
    description: String,
    severity: Spanned<String>,
    risk_score: Option<Spanned<i64>>,
    #[serde(rename = "type")]
    rule_type: Option<String>,
    language: Option<String>,
    query: Spanned<String>,
    max_signals: Option<Spanned<i64>>,
    interval: Option<Spanned<String>>,
    from: Option<String>,
    #[serde(default)]
    author: Vec<String>,
    license: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    version: Option<Spanned<i64>>,
    #[serde(default)]
    threat: Vec<RawThreat>,
}

#[derive(Deserialize)]
struct RawThreat {
    framework: String,
    tactic: Option<RawRef>,
    #[serde(default)]
    technique: Vec<RawTechnique>,
}

#[derive(Deserialize)]
struct RawRef {
    id: String,
    name: String,
    #[serde(default)]
    reference: String,
}

#[derive(Deserialize)]
struct RawTechnique {
    id: String,
    name: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    subtechnique: Vec<RawRef>,
}

impl From<RawRef> for ThreatRef {
    fn from(r: RawRef) -> ThreatRef {
        ThreatRef {
            id: r.id,
            name: r.name,
            reference: r.reference,
        }
    }
}

/// Validates the fields and compiles the query.
fn build(src: &str, raw: RawFile, options: &eql::Options) -> Outcome {
    let name = raw.rule.get_ref().name.clone();
    match meta_from(src, raw) {
        Err(problem) => Outcome::Error {
            name: Some(name),
            problems: vec![problem],
        },
        Ok((meta, query_span)) => match eql::compile_query_str(&meta.query, options) {
            Ok(mut query) => {
                query.set_sample_retention(lookback_ns(&meta));
                Outcome::Ok(Box::new(Rule {
                    meta,
                    origin: Origin::Builtin(""),
                    query,
                    index: usize::MAX,
                }))
            }
            Err(errors) => {
                let mut problems: Vec<Problem> = errors
                    .iter()
                    .map(|e| query_problem(src, query_span.clone(), &meta.query, e))
                    .collect();
                if problems.is_empty() {
                    problems.push(Problem::at(src, query_span, "the query did not compile"));
                }
                if errors.iter().all(|e| e.kind == ErrorKind::Unsupported) {
                    Outcome::Unsupported {
                        meta: Box::new(meta),
                        problem: problems.swap_remove(0),
                    }
                } else {
                    // Report real errors first; "unsupported" notes only after them.
                    let mut order: Vec<usize> = (0..problems.len()).collect();
                    order.sort_by_key(|&i| errors[i].kind == ErrorKind::Unsupported);
                    Outcome::Error {
                        name: Some(name),
                        problems: order.into_iter().map(|i| problems[i].clone()).collect(),
                    }
                }
            }
        },
    }
}

/// An EQL error, moved from query offsets to rule-file offsets.
fn query_problem(src: &str, token: Range<usize>, query: &str, e: &eql::Error) -> Problem {
    let raw = src.get(token.clone()).unwrap_or("");
    let (start, end) = match source_offsets(raw, query) {
        Some(map) => {
            let at = |offset: u32| {
                let i = (offset as usize).min(map.len() - 1);
                token.start + map[i]
            };
            (at(e.span.start), at(e.span.end))
        }
        None => (token.start, token.start),
    };
    Problem::at(src, start..end, e.message.clone())
}

fn meta_from(src: &str, raw: RawFile) -> Result<(RuleMeta, Range<usize>), Problem> {
    let maturity = raw.metadata.and_then(|m| m.maturity);
    let r = raw.rule.into_inner();
    let severity = Severity::parse(r.severity.get_ref()).ok_or_else(|| {
        Problem::at(
            src,
            r.severity.span(),
            format!(
                "unknown severity \"{}\"; expected low, medium, high or critical",
                r.severity.get_ref()
            ),
        )
    })?;
    let risk_score = match &r.risk_score {
        None => severity.score(),
        Some(score) => u8::try_from(*score.get_ref())
            .ok()
            .filter(|s| *s <= 100)
            .ok_or_else(|| {
                Problem::at(src, score.span(), "risk_score must be between 0 and 100")
            })?,
    };
    let max_signals = match &r.max_signals {
        None => DEFAULT_MAX_SIGNALS,
        Some(n) => u32::try_from(*n.get_ref())
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Problem::at(src, n.span(), "max_signals must be a positive integer"))?,
    };
    let (interval, interval_ns) = match &r.interval {
        None => (DEFAULT_INTERVAL.to_owned(), 5 * 60 * 1_000_000_000),
        Some(i) => {
            let ns = parse_interval(i.get_ref()).ok_or_else(|| {
                Problem::at(
                    src,
                    i.span(),
                    format!(
                        "invalid interval \"{}\"; expected a number and a unit, like 30s, 5m, 1h or 1d",
                        i.get_ref()
                    ),
                )
            })?;
            (i.get_ref().clone(), ns)
        }
    };
    let version =
        match &r.version {
            None => None,
            Some(v) => Some(u32::try_from(*v.get_ref()).map_err(|_| {
                Problem::at(src, v.span(), "version must be a non-negative integer")
            })?),
        };
    let query_span = r.query.span();
    let threat = r
        .threat
        .into_iter()
        .map(|t| Threat {
            framework: t.framework,
            tactic: t.tactic.map(ThreatRef::from),
            techniques: t
                .technique
                .into_iter()
                .map(|tech| Technique {
                    technique: ThreatRef {
                        id: tech.id,
                        name: tech.name,
                        reference: tech.reference,
                    },
                    subtechniques: tech.subtechnique.into_iter().map(ThreatRef::from).collect(),
                })
                .collect(),
        })
        .collect();
    let meta = RuleMeta {
        rule_id: r.rule_id,
        name: r.name,
        description: r.description,
        severity,
        risk_score,
        rule_type: r.rule_type.unwrap_or_else(|| "eql".to_owned()),
        language: r.language.unwrap_or_else(|| "eql".to_owned()),
        query: r.query.into_inner(),
        max_signals,
        interval,
        interval_ns,
        from: r.from,
        author: r.author,
        license: r.license,
        references: r.references,
        tags: r.tags,
        version,
        maturity,
        threat,
    };
    Ok((meta, query_span))
}

/// The window one run of the rule searches in Elastic: `from = "now-9m"` is 9 minutes; without
/// a (parseable) `from`, the rule's `interval`. Samples wait this long for their other events.
pub fn lookback_ns(meta: &RuleMeta) -> i64 {
    meta.from
        .as_deref()
        .and_then(|f| f.strip_prefix("now-"))
        .and_then(parse_interval)
        .unwrap_or(meta.interval_ns)
}

/// `30s`, `5m`, `1h`, `1d` → nanoseconds.
pub fn parse_interval(s: &str) -> Option<i64> {
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(unit_at);
    let n: i64 = digits.parse().ok().filter(|n| *n > 0)?;
    let unit_ns: i64 = match unit {
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit_ns)
}

impl Report {
    /// Fixes up the origin of a compiled rule (it is built before the origin is attached).
    fn finish(mut self) -> Report {
        if let Outcome::Ok(rule) = &mut self.outcome {
            rule.origin = self.origin.clone();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin::File {
            path: "t.toml".into(),
            root: ".".into(),
        }
    }

    fn outcome(src: &str) -> Outcome {
        load_source(origin(), src, &eql::Options::default()).outcome
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5m"), Some(300_000_000_000));
        assert_eq!(parse_interval("1h"), Some(3_600_000_000_000));
        assert_eq!(parse_interval("10s"), Some(10_000_000_000));
        for bad in [
            "",
            "m",
            "5",
            "0m",
            "5 m",
            "5w",
            "-5m",
            "99999999999999999999m",
        ] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn non_eql_rules_are_skipped_with_the_reason() {
        let o = outcome("[rule]\nname = \"k\"\nrule_id = \"x\"\ntype = \"query\"\nlanguage = \"kuery\"\nquery = \"a:b\"\n");
        match o {
            Outcome::Skipped { reason, name, .. } => {
                assert_eq!(name.as_deref(), Some("k"));
                assert!(reason.contains("type \"query\""), "{reason}");
                assert!(reason.contains("language \"kuery\""), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn toml_errors_have_positions() {
        match outcome("[rule]\nname = \"x\nquery = 'y'\n") {
            Outcome::Error { problems, .. } => {
                assert_eq!(problems[0].position, Some((2, 10)));
                assert!(problems[0].snippet.contains("name = \"x"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn field_errors_point_at_the_value() {
        let src = "[rule]\nname = \"x\"\nrule_id = \"r\"\ntype = \"eql\"\nseverity = \"severe\"\nquery = 'process where true'\n";
        match outcome(src) {
            Outcome::Error { problems, .. } => {
                assert_eq!(problems[0].position, Some((5, 12)));
                assert!(problems[0].message.contains("unknown severity"));
            }
            other => panic!("{other:?}"),
        }
        let src = "[rule]\nname = \"x\"\ntype = \"eql\"\nseverity = \"low\"\nquery = 'process where true'\n";
        match outcome(src) {
            Outcome::Error { problems, .. } => {
                assert_eq!(problems[0].position, Some((1, 1)));
                assert!(problems[0].message.contains("rule_id"), "{problems:?}");
            }
            other => panic!("{other:?}"),
        }
        match outcome("[metadata]\nx = 1\n") {
            Outcome::Error { problems, .. } => assert_eq!(problems[0].message, "no [rule] table"),
            other => panic!("{other:?}"),
        }
        match outcome("[rule]\nname = \"x\"\n") {
            Outcome::Error { problems, .. } => assert!(problems[0].message.contains("neither")),
            other => panic!("{other:?}"),
        }
    }
}
