//! Names of the headers symhub sets or reads on every symbol request, parsed once. A name
//! given as `&str` is parsed and checked at each use: with `x-cache` and `x-forwarded-for`
//! that was ~900 of the 30,900 instructions of a remembered 404 (callgrind).

use http::HeaderName;

/// How the answer was reached: `HIT`, `MISS`, `COALESCED`, `NEGATIVE`… (as SymProxy's
/// and nginx's caches say it).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// `store` or `cache`: which of symhub's own places the bytes came from.
pub const X_SYMHUB_SOURCE: HeaderName = HeaderName::from_static("x-symhub-source");
/// The upstream a cached or streaming file came from.
pub const X_SYMHUB_UPSTREAM: HeaderName = HeaderName::from_static("x-symhub-upstream");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// debuginfod's headers (elfutils' `debuginfod-client.c` reads them).
pub const X_DEBUGINFOD_SIZE: HeaderName = HeaderName::from_static("x-debuginfod-size");
pub const X_DEBUGINFOD_FILE: HeaderName = HeaderName::from_static("x-debuginfod-file");
