//! The common case of a `/symbolicate/v5` request: a valid one, deserialized straight into
//! its shape. Anything this does not accept as it is (a wrong type, a bound passed, a
//! duplicated key, `null` where a list belongs) answers `None`, and [`super::v5::parse`]
//! walks the request as a `serde_json::Value` to say what is wrong in Eliot's words.
//!
//! Why two paths: building the `Value` was 60 % of the instructions of a warm 50-frame job
//! (callgrind: 285k of 480k); a request is valid nearly always.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::v5::{debug_file_ok, debug_id_ok, Job};
use crate::config::SymbolicationConfig;

/// `None` unless `body` is a valid request within `limits`; then its jobs, exactly as the
/// `Value` walk would give them.
pub(super) fn parse(body: &[u8], limits: &SymbolicationConfig) -> Option<Vec<Job>> {
    // As text first: skipping an unknown key's value would not check its UTF-8, which the
    // `Value` walk refuses (the fuzz target found one).
    let body = std::str::from_utf8(body).ok()?;
    let Obj(payload) = serde_json::from_str::<Obj<Payload>>(body).ok()?;
    let raw = match payload.jobs {
        Present(jobs) => jobs.into_iter().map(|Obj(job)| job).collect(),
        // Without `jobs`, the payload is the one job.
        Absent => vec![RawJob {
            memory_map: payload.memory_map,
            stacks: payload.stacks,
        }],
    };
    if raw.len() > limits.max_jobs {
        return None;
    }
    raw.into_iter().map(|job| job.check(limits)).collect()
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    jobs: Maybe<Vec<Obj<RawJob>>>,
    #[serde(default, rename = "memoryMap")]
    memory_map: Maybe<Vec<(String, String)>>,
    #[serde(default)]
    stacks: Maybe<Vec<Vec<(Int, Int)>>>,
}

#[derive(Deserialize)]
struct RawJob {
    #[serde(default, rename = "memoryMap")]
    memory_map: Maybe<Vec<(String, String)>>,
    #[serde(default)]
    stacks: Maybe<Vec<Vec<(Int, Int)>>>,
}

impl RawJob {
    fn check(self, limits: &SymbolicationConfig) -> Option<Job> {
        let (Present(modules), Present(stacks)) = (self.memory_map, self.stacks) else {
            return None;
        };
        let modules_ok = modules.len() <= limits.max_modules
            && modules
                .iter()
                .all(|(file, id)| debug_file_ok(file) && debug_id_ok(id));
        let frames: usize = stacks.iter().map(Vec::len).sum();
        if !modules_ok || stacks.is_empty() || frames > limits.max_frames {
            return None;
        }
        let stacks = stacks
            .into_iter()
            .map(|frames| {
                frames
                    .into_iter()
                    .map(|(index, offset)| {
                        let index = match index {
                            Int::Negative(-1) => None,
                            Int::Positive(i) if i < modules.len() as u64 => Some(i as usize),
                            _ => return None,
                        };
                        let offset = match offset {
                            Int::Negative(-1) => None,
                            Int::Positive(o) => Some(o),
                            Int::Negative(_) => return None,
                        };
                        Some((index, offset))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Job { modules, stacks })
    }
}

/// A key that is either missing, or there with a value of its type: `null` is not `Absent`
/// (the `Value` walk refuses a `null` list, so this must too).
#[derive(Default)]
enum Maybe<T> {
    #[default]
    Absent,
    Present(T),
}
use Maybe::{Absent, Present};

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Present)
    }
}

/// A struct from a JSON object only. (serde's derived structs also read an array, field by
/// field, which the `Value` walk refuses: the fuzz target found `[[]]`.)
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjVisitor(std::marker::PhantomData))
            .map(Obj)
    }
}

/// A JSON integer (never a float), as the `Value` walk takes module indexes and offsets.
enum Int {
    Negative(i64),
    Positive(u64),
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(match u64::try_from(v) {
                    Ok(v) => Int::Positive(v),
                    Err(_) => Int::Negative(v),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int::Positive(v))
            }
        }
        d.deserialize_any(IntVisitor)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::SymbolicationConfig;
    use crate::symbolicate::v5::{parse_typed, parse_value};

    /// Valid requests take the typed path and give what the `Value` walk gives; anything
    /// else falls to the walk, which names the fault.
    #[test]
    fn the_typed_parse_accepts_exactly_the_valid_requests_with_the_same_jobs() {
        let limits = SymbolicationConfig {
            max_jobs: 2,
            max_modules: 2,
            max_frames: 3,
            ..SymbolicationConfig::default()
        };
        let valid = [
            r#"{"jobs": [{"memoryMap": [["a.pdb", "AB12"]], "stacks": [[[0, 16], [-1, -1]]]}]}"#,
            r#"{"memoryMap": [["a.pdb", "AB12"], ["b", ""]], "stacks": [[[1, 0]], []]}"#,
            r#"{"jobs": [{"memoryMap": [], "stacks": [[[-1, 5]]], "extra": 1}], "other": null}"#,
            r#"{"jobs": [{"memoryMap": [["x", "1"]], "stacks": [[[0, 18446744073709551615]]]}]}"#,
        ];
        for body in valid {
            let typed = parse_typed(body.as_bytes(), &limits);
            assert!(typed.is_some(), "{body}");
            assert_eq!(
                Ok(typed.unwrap()),
                parse_value(body.as_bytes(), &limits),
                "{body}"
            );
        }
        let invalid = [
            r#"{"jobs": null, "memoryMap": [], "stacks": [[]]}"#,
            r#"{"memoryMap": null, "stacks": [[]]}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": [[[0, 1.0]]]}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": [[[0.0, 1]]]}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": [[[1, 1]]]}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": [[[-2, 1]]]}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": [[[0, -2]]]}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": [[[0, 1, 2]]]}"#,
            r#"{"memoryMap": [["a/b", "1"]], "stacks": [[[0, 1]]]}"#,
            r#"{"memoryMap": [["a", "xyz"]], "stacks": [[[0, 1]]]}"#,
            r#"{"memoryMap": [["a", "1", "2"]], "stacks": [[[0, 1]]]}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": []}"#,
            r#"{"memoryMap": [["a", "1"]], "stacks": [[[0, 1], [0, 1], [0, 1], [0, 1]]]}"#,
            r#"{"memoryMap": [["a", "1"], ["b", "2"], ["c", "3"]], "stacks": [[[0, 1]]]}"#,
            r#"{"jobs": [{"memoryMap": [], "stacks": [[]]}, {"memoryMap": [], "stacks": [[]]}, {"memoryMap": [], "stacks": [[]]}]}"#,
            r#"{"memoryMap": [["a", "1"]], "memoryMap": [["a", "1"]], "stacks": [[[0, 1]]]}"#,
            r#"{"memoryMap": [["a", "1"]]}"#,
            r#"[1, 2]"#,
            r#"[[]]"#,
            r#"{"jobs": [[[["a", "1"]], [[[0, 1]]]]]}"#,
        ];
        for body in invalid {
            assert!(parse_typed(body.as_bytes(), &limits).is_none(), "{body}");
        }
        // Not UTF-8, in the value of a key nobody reads.
        let body = b"{\"memoryMap\": [], \"stacks\": [[]], \"x\": \"\xaf\"}";
        assert!(parse_value(body, &limits).is_err());
        assert!(parse_typed(body, &limits).is_none());
    }
}
