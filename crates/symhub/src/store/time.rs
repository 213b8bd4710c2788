//! Times as the store keeps them (integers since the Unix epoch) and as API answers write
//! them (RFC 3339, UTC, whole seconds): one place for the conversions every table and
//! answer uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch: access times and leases, so that entries made within
/// one second keep their order.
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch (the epoch for a negative value).
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// `2026-12-06T10:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// [`rfc3339`] of a unix-ms column that may be NULL.
pub fn rfc3339_millis(ms: Option<i64>) -> Option<String> {
    ms.map(|ms| rfc3339(from_millis(ms)))
}

/// [`rfc3339`] for `#[serde(serialize_with = "…")]`.
pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// [`serialize`] of an optional time: `null` when there is none.
pub fn serialize_opt<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}
