//! `POST /symbolicate/v5`, as Mozilla's Eliot (formerly Tecken) answers it for the Firefox
//! Profiler and Socorro: `{"jobs": [{"memoryMap": [[debugFile, debugId]…], "stacks":
//! [[[moduleIndex, offset]…]…]}]}` → `{"results": [{"stacks": [[frame…]…], "found_modules":
//! {"<file>/<id>": true|false|null}}]}`.
//!
//! Validation follows Eliot's `symbolicate_resource.py` in order and wording (the `title` of
//! its 400s), so a client that shows the message shows the same one; symhub's own bounds
//! (`symbolication.max_*`) come on top. Edge cases as Eliot: a payload without `jobs` is one
//! job; module index -1 is `<unknown>` and never looked up; offset -1 is kept (`-0x1`) but
//! not symbolicated; an entry with an empty name or id, or that no frame uses, is `null`;
//! offsets are answered as Python's `hex()` (lower-case, unpadded).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use super::{ModuleRef, NoSymbols, Symbolicator, Symbols};
use crate::config::SymbolicationConfig;

/// A request the validation refused: the HTTP status, symhub's error code, and Eliot's
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn bad(message: impl Into<String>) -> Invalid {
    Invalid {
        status: 400,
        code: "invalid_request",
        message: message.into(),
    }
}

fn over(code: &'static str, message: String) -> Invalid {
    Invalid {
        status: 413,
        code,
        message,
    }
}

/// One validated job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `(debug_filename, debug_id)` as sent.
    pub modules: Vec<(String, String)>,
    /// `(module index or None for -1, offset or None for -1)`.
    pub stacks: Vec<Vec<(Option<usize>, Option<u64>)>>,
}

/// Parses and validates a request body.
pub fn parse(body: &[u8], limits: &SymbolicationConfig) -> Result<Vec<Job>, Invalid> {
    match super::v5_typed::parse(body, limits) {
        Some(jobs) => Ok(jobs),
        None => parse_value(body, limits),
    }
}

/// [`parse`] of a valid request by deserializing it straight into its shape; `None` for
/// anything else (`symbolicate::v5_typed`). Public for the fuzz target that checks it agrees
/// with [`parse_value`].
pub fn parse_typed(body: &[u8], limits: &SymbolicationConfig) -> Option<Vec<Job>> {
    super::v5_typed::parse(body, limits)
}

/// [`parse`] by walking the request as a `serde_json::Value`, which names what is wrong in
/// Eliot's words.
pub fn parse_value(body: &[u8], limits: &SymbolicationConfig) -> Result<Vec<Job>, Invalid> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|_| bad("Payload is not valid JSON"))?;
    let Value::Object(map) = &payload else {
        return Err(bad("payload must be a JSON object"));
    };
    let jobs = match map.get("jobs") {
        Some(Value::Array(jobs)) => jobs.iter().collect::<Vec<_>>(),
        Some(_) => return Err(bad("jobs must be a list")),
        None => vec![&payload],
    };
    if jobs.len() > limits.max_jobs {
        return Err(bad(format!(
            "please limit number of jobs in a single request to <= {}",
            limits.max_jobs
        )));
    }
    jobs.iter()
        .enumerate()
        .map(|(i, job)| parse_job(i, job, limits))
        .collect()
}

fn parse_job(i: usize, job: &Value, limits: &SymbolicationConfig) -> Result<Job, Invalid> {
    let Value::Object(job) = job else {
        return Err(bad(format!("job {i} is invalid")));
    };
    let Some(stacks) = job.get("stacks") else {
        return Err(bad(format!("job {i} is invalid: no stacks specified")));
    };
    let Some(memory_map) = job.get("memoryMap") else {
        return Err(bad(format!("job {i} is invalid: no memoryMap specified")));
    };
    let modules =
        parse_modules(memory_map).map_err(|e| bad(format!("job {i} has invalid modules: {e}")))?;
    if modules.len() > limits.max_modules {
        return Err(over(
            "too_many_modules",
            format!(
                "job {i} has {} modules, more than symbolication.max_modules ({})",
                modules.len(),
                limits.max_modules
            ),
        ));
    }
    let stacks = parse_stacks(stacks, modules.len(), limits.max_frames).map_err(|e| match e {
        StackError::Invalid(e) => bad(format!("job {i} has invalid stacks: {e}")),
        StackError::TooMany => over(
            "too_many_frames",
            format!(
                "job {i} has more frames than symbolication.max_frames ({})",
                limits.max_frames
            ),
        ),
    })?;
    Ok(Job { modules, stacks })
}

fn parse_modules(memory_map: &Value) -> Result<Vec<(String, String)>, String> {
    let Value::Array(entries) = memory_map else {
        return Err("modules must be a list".into());
    };
    let mut modules = Vec::with_capacity(entries.len());
    for (n, entry) in entries.iter().enumerate() {
        let pair = match entry {
            Value::Array(p) if p.len() == 2 => p,
            _ => {
                return Err(format!(
                    "module index {n} does not have a debug_filename and debug_id"
                ))
            }
        };
        let (Value::String(file), Value::String(id)) = (&pair[0], &pair[1]) else {
            return Err(format!(
                "module index {n} does not have a debug_filename and debug_id"
            ));
        };
        if !debug_file_ok(file) {
            return Err(format!("module index {n} has an invalid debug_filename"));
        }
        if !debug_id_ok(id) {
            return Err(format!("module index {n} has an invalid debug_id"));
        }
        modules.push((file.clone(), id.clone()));
    }
    Ok(modules)
}

/// Eliot's pattern `^[A-Za-z0-9_.+{}@<> ~-]*$`, and old Tecken's 1024-character bound.
pub(super) fn debug_file_ok(file: &str) -> bool {
    file.len() <= 1024
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+{}@<> ~-".contains(&b))
}

/// Eliot's pattern `^[A-Fa-f0-9]*$`, and old Tecken's 1024-character bound.
pub(super) fn debug_id_ok(id: &str) -> bool {
    id.len() <= 1024 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

enum StackError {
    Invalid(String),
    TooMany,
}

type Frames = Vec<Vec<(Option<usize>, Option<u64>)>>;

fn parse_stacks(stacks: &Value, modules: usize, max_frames: usize) -> Result<Frames, StackError> {
    let invalid = |s: String| StackError::Invalid(s);
    let Value::Array(stacks) = stacks else {
        return Err(invalid("stacks must be a list of lists".into()));
    };
    if stacks.is_empty() {
        return Err(invalid("no stacks specified".into()));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(stacks.len());
    for (s, stack) in stacks.iter().enumerate() {
        let Value::Array(frames) = stack else {
            return Err(invalid(format!("stack {s} is not a list")));
        };
        total += frames.len();
        if total > max_frames {
            return Err(StackError::TooMany);
        }
        let mut parsed = Vec::with_capacity(frames.len());
        for (f, frame) in frames.iter().enumerate() {
            let pair = match frame {
                Value::Array(p) if p.len() == 2 => p,
                _ => {
                    return Err(invalid(format!(
                        "stack {s} frame {f} is not a list of two items"
                    )))
                }
            };
            let index = match &pair[0] {
                Value::Number(n) if n.is_i64() || n.is_u64() => n.as_i64(),
                _ => {
                    return Err(invalid(format!(
                        "stack {s} frame {f} has an invalid module_index"
                    )))
                }
            };
            let index = match index {
                Some(-1) => None,
                Some(i) if i >= 0 && (i as u64) < modules as u64 => Some(i as usize),
                _ => {
                    return Err(invalid(format!(
                        "stack {s} frame {f} has a module_index that isn't in modules"
                    )))
                }
            };
            let offset = match &pair[1] {
                Value::Number(n) if n.as_i64() == Some(-1) => None,
                Value::Number(n) if n.is_u64() => n.as_u64(),
                _ => {
                    return Err(invalid(format!(
                        "stack {s} frame {f} has an invalid module_offset"
                    )))
                }
            };
            parsed.push((index, offset));
        }
        out.push(parsed);
    }
    Ok(out)
}

/// Python's `hex()`.
fn hex(offset: Option<u64>) -> String {
    match offset {
        Some(o) => format!("{o:#x}"),
        None => "-0x1".into(),
    }
}

/// The answer to a request: one result per job, in order. Typed rather than a
/// `serde_json::Value`, so a big answer (200,000 frames) costs a few hundred bytes a frame.
#[derive(Debug, Serialize)]
pub struct Answer {
    pub results: Vec<JobResult>,
}

#[derive(Debug, Serialize)]
pub struct JobResult {
    pub stacks: Vec<Vec<Frame>>,
    /// `"<file>/<id>"` as sent → found (true), missing (false), not looked up (null).
    pub found_modules: BTreeMap<String, Option<bool>>,
}

#[derive(Debug, Serialize)]
pub struct Frame {
    pub frame: usize,
    #[serde(serialize_with = "shared_str")]
    pub module: Arc<str>,
    pub module_offset: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_offset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inlines: Vec<InlineFrame>,
}

fn shared_str<S: serde::Serializer>(s: &Arc<str>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(s)
}

#[derive(Debug, Serialize)]
pub struct InlineFrame {
    pub function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// Symbolicates validated jobs: each module any frame uses is looked up once for the whole
/// request, several at a time.
pub async fn symbolicate(symbolicator: &Symbolicator, jobs: &[Job]) -> Answer {
    let wanted: BTreeSet<&(String, String)> = jobs
        .iter()
        .flat_map(|job| {
            let used = job.stacks.iter().flatten().filter_map(|(index, _)| *index);
            used.map(|i| &job.modules[i])
        })
        .filter(|m| !m.0.is_empty() && !m.1.is_empty())
        .collect();
    let lookups = wanted.into_iter().cloned().map(|m| {
        let module = ModuleRef {
            debug_file: m.0.clone(),
            debug_id: m.1.clone(),
            code: None,
        };
        async move { (m, symbolicator.module(&module).await) }
    });
    let found: Found = futures_util::stream::iter(lookups)
        .buffer_unordered(8)
        .collect()
        .await;
    Answer {
        results: jobs.iter().map(|job| answer(job, &found)).collect(),
    }
}

type Found = HashMap<(String, String), Result<Arc<Symbols>, NoSymbols>>;

fn answer(job: &Job, found: &Found) -> JobResult {
    let mut found_modules = BTreeMap::new();
    for m in &job.modules {
        let v = found.get(m).map(|r| r.is_ok());
        // A name seen twice keeps what any lookup of it found.
        let key = format!("{}/{}", m.0, m.1);
        if found_modules.get(&key) != Some(&Some(true)) {
            found_modules.insert(key, v);
        }
    }
    // Each module's symbols and name once, shared by its frames.
    let symbols: Vec<Option<&Arc<Symbols>>> = job
        .modules
        .iter()
        .map(|m| found.get(m).and_then(|r| r.as_ref().ok()))
        .collect();
    let names: Vec<Arc<str>> = job
        .modules
        .iter()
        .zip(&symbols)
        .map(|(m, s)| {
            s.and_then(|s| s.code_file.as_deref())
                .unwrap_or(&m.0)
                .into()
        })
        .collect();
    let unknown: Arc<str> = "<unknown>".into();
    let stacks = job
        .stacks
        .iter()
        .map(|stack| {
            stack
                .iter()
                .enumerate()
                .map(|(n, &(index, offset))| {
                    let module = index.map_or(unknown.clone(), |i| names[i].clone());
                    frame(n, module, index.and_then(|i| symbols[i]), offset)
                })
                .collect()
        })
        .collect();
    JobResult {
        stacks,
        found_modules,
    }
}

fn frame(n: usize, module: Arc<str>, symbols: Option<&Arc<Symbols>>, offset: Option<u64>) -> Frame {
    let mut f = Frame {
        frame: n,
        module,
        module_offset: hex(offset),
        function: None,
        function_offset: None,
        file: None,
        line: None,
        inlines: Vec::new(),
    };
    let (Some(symbols), Some(offset)) = (symbols, offset) else {
        return f;
    };
    let s = symbols.lookup(offset);
    let Some(function) = s.function else {
        return f;
    };
    f.function = Some(function);
    f.function_offset = Some(hex(Some(offset.saturating_sub(s.function_base))));
    if s.file.is_some() {
        f.line = s.line.filter(|&l| l != 0);
        f.file = s.file;
    }
    f.inlines = s
        .inlines
        .into_iter()
        .map(|i| InlineFrame {
            function: i.function,
            file: i.file,
            line: i.line.filter(|&l| l != 0),
        })
        .collect();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SymbolicationConfig {
        SymbolicationConfig::default()
    }

    fn err(body: &str) -> String {
        parse(body.as_bytes(), &limits()).unwrap_err().message
    }

    #[test]
    fn refuses_what_eliot_refuses_with_its_words() {
        assert_eq!(err(""), "Payload is not valid JSON");
        assert_eq!(err("{"), "Payload is not valid JSON");
        let eleven = format!("{{\"jobs\": [{}]}}", ["{}"; 11].join(","));
        assert_eq!(
            err(&eleven),
            "please limit number of jobs in a single request to <= 10"
        );
        assert_eq!(err(r#"{"jobs": [1]}"#), "job 0 is invalid");
        assert_eq!(
            err(r#"{"jobs": [{}]}"#),
            "job 0 is invalid: no stacks specified"
        );
        assert_eq!(
            err(r#"{"stacks": [[]]}"#),
            "job 0 is invalid: no memoryMap specified"
        );
        assert_eq!(
            err(r#"{"stacks": [[]], "memoryMap": {}}"#),
            "job 0 has invalid modules: modules must be a list"
        );
        assert_eq!(
            err(r#"{"stacks": [[]], "memoryMap": [["a"]]}"#),
            "job 0 has invalid modules: module index 0 does not have a debug_filename and debug_id"
        );
        assert_eq!(
            err(r#"{"stacks": [[]], "memoryMap": [["a/b", "00"]]}"#),
            "job 0 has invalid modules: module index 0 has an invalid debug_filename"
        );
        assert_eq!(
            err(r#"{"stacks": [[]], "memoryMap": [["a", "xyz"]]}"#),
            "job 0 has invalid modules: module index 0 has an invalid debug_id"
        );
        assert_eq!(
            err(r#"{"stacks": [], "memoryMap": []}"#),
            "job 0 has invalid stacks: no stacks specified"
        );
        assert_eq!(
            err(r#"{"stacks": [1], "memoryMap": []}"#),
            "job 0 has invalid stacks: stack 0 is not a list"
        );
        assert_eq!(
            err(r#"{"stacks": [[[0]]], "memoryMap": [["a", "00"]]}"#),
            "job 0 has invalid stacks: stack 0 frame 0 is not a list of two items"
        );
        assert_eq!(
            err(r#"{"stacks": [[["0", 1]]], "memoryMap": [["a", "00"]]}"#),
            "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_index"
        );
        assert_eq!(
            err(r#"{"stacks": [[[1, 1]]], "memoryMap": [["a", "00"]]}"#),
            "job 0 has invalid stacks: stack 0 frame 0 has a module_index that isn't in modules"
        );
        assert_eq!(
            err(r#"{"stacks": [[[-2, 1]]], "memoryMap": [["a", "00"]]}"#),
            "job 0 has invalid stacks: stack 0 frame 0 has a module_index that isn't in modules"
        );
        assert_eq!(
            err(r#"{"stacks": [[[0, -2]]], "memoryMap": [["a", "00"]]}"#),
            "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset"
        );
        assert_eq!(
            err(r#"{"stacks": [[[0, 1.5]]], "memoryMap": [["a", "00"]]}"#),
            "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset"
        );
    }

    #[test]
    fn accepts_what_eliot_accepts() {
        let jobs = parse(br#"{"jobs": []}"#, &limits()).unwrap();
        assert!(jobs.is_empty());
        let jobs = parse(
            br#"{"stacks": [[[-1, 1000], [0, -1]], []], "memoryMap": [["", ""]], "version": 4}"#,
            &limits(),
        )
        .unwrap();
        assert_eq!(jobs[0].stacks[0], vec![(None, Some(1000)), (Some(0), None)]);
        let big = format!(
            r#"{{"stacks": [[[0, {}]]], "memoryMap": [["a", "0"]]}}"#,
            u64::MAX
        );
        assert_eq!(
            parse(big.as_bytes(), &limits()).unwrap()[0].stacks[0][0].1,
            Some(u64::MAX)
        );
    }

    #[test]
    fn symhub_bounds_name_their_setting() {
        let l = SymbolicationConfig {
            max_modules: 1,
            max_frames: 2,
            ..limits()
        };
        let e = parse(
            br#"{"stacks": [[]], "memoryMap": [["a", "0"], ["b", "0"]]}"#,
            &l,
        )
        .unwrap_err();
        assert_eq!((e.status, e.code), (413, "too_many_modules"));
        assert!(e.message.contains("symbolication.max_modules"));
        let e = parse(
            br#"{"stacks": [[[0, 1], [0, 2]], [[0, 3]]], "memoryMap": [["a", "0"]]}"#,
            &l,
        )
        .unwrap_err();
        assert_eq!((e.status, e.code), (413, "too_many_frames"));
        assert!(e.message.contains("symbolication.max_frames"));
    }

    #[test]
    fn offsets_are_python_hex() {
        assert_eq!(hex(Some(31354)), "0x7a7a");
        assert_eq!(hex(Some(0)), "0x0");
        assert_eq!(hex(None), "-0x1");
    }
}
