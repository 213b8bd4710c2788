//! What a strict upstream receives: `key_spelling` against a case-sensitive, byte-for-byte
//! store that reads request paths the way S3 does (`+` is a space, then percent-decoding), as
//! a bucket written by symstore.exe or dump_syms is served. Every path it was sent is
//! recorded raw, so each test says exactly what went over the wire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{StatusCode, Uri};

use crate::support::*;

#[derive(Default)]
struct StoreState {
    /// Stored names (decoded, exact bytes) → contents.
    files: HashMap<String, Bytes>,
    /// Raw request paths, in arrival order.
    received: Mutex<Vec<String>>,
}

/// The strict store: a real HTTP server on loopback.
struct StrictStore {
    url: String,
    state: Arc<StoreState>,
    _server: tokio::task::JoinHandle<()>,
}

impl StrictStore {
    async fn start(names: &[&str]) -> Self {
        let files = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), data(100 + i, 500 + i as u64)))
            .collect();
        let state = Arc::new(StoreState {
            files,
            ..StoreState::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(store_handler)
            .with_state(state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            state,
            _server: server,
        }
    }

    fn body(&self, name: &str) -> Bytes {
        self.state.files[name].clone()
    }

    fn received(&self) -> Vec<String> {
        self.state.received.lock().unwrap().clone()
    }
}

/// S3 decodes a `+` in a path to a space (which is why symhub sends `%2B`; see
/// `symhub_core::spelling`), then percent-decodes, then compares bytes.
fn s3_decode(raw: &str) -> Option<String> {
    let plus_is_space = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_is_space)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

async fn store_handler(State(state): State<Arc<StoreState>>, uri: Uri) -> Response {
    let raw = uri.path().to_owned();
    state.received.lock().unwrap().push(raw.clone());
    let found = s3_decode(&raw)
        .and_then(|p| p.strip_prefix('/').map(str::to_owned))
        .and_then(|name| state.files.get(&name).cloned());
    match found {
        Some(body) => body.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A symhub whose one upstream is `store`. No CAB fallback, so a miss is one request.
fn symhub_for(store: &StrictStore, spelling: &str) -> Symhub {
    let more = format!("key_spelling = \"{spelling}\"");
    // One request per key: no `.pd_` form, and no PDB asked for to make a missing `.sym`.
    let no_cab = "[cache]\ndecompress_cab = false\n[symbolication]\non_demand = false";
    Symhub::start(&config_with(&[("strict", &store.url, &more)], no_cab))
}

/// GETs `path` from a fresh symhub (nothing cached) and returns the status, the body and the
/// paths the store received.
async fn through(store: &StrictStore, spelling: &str, path: &str) -> (u16, Bytes, Vec<String>) {
    let s = symhub_for(store, spelling);
    let before = store.received().len();
    let r = s.get(path).await;
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, body, store.received()[before..].to_vec())
}

const GUID: &str = "3F2504E04F8911D39A0C0305E82C3301";
const BUILD_ID: &str = "D8F1DB379E2179D0896EB8F060CBFF0576178C03";
const UUID: &str = "C2E1A16B8C7E3E4C9E9D0B1F3A5C7D9E";

/// The case: a PE image and a PDB of age 10 as symstore.exe wrote them, asked by
/// WinDbg with exactly that spelling, and by a client that lowercases everything.
#[tokio::test]
async fn a_symsrv_upstream_gets_the_exact_names_symstore_wrote() {
    let dll = "renderdoc.dll/61015E74442b000/renderdoc.dll";
    let pdb = format!("foo.pdb/{GUID}a/foo.pdb");
    let store = StrictStore::start(&[dll, &pdb]).await;
    for name in [dll, &pdb] {
        for client in [name.to_owned(), name.to_lowercase()] {
            let (status, body, received) = through(&store, "symsrv", &format!("/{client}")).await;
            assert_eq!(status, 200, "{client}: the store saw {received:?}");
            assert_eq!(body, store.body(name), "{client}");
            assert_eq!(received, [format!("/{name}")], "{client}");
        }
    }
}

/// Every mode against the store, for every kind of key and for names that need escaping:
/// `(client path, name in the store, [as-requested, lowercase, symsrv] path sent)`.
#[tokio::test]
async fn each_spelling_sends_each_kind_of_key_as_documented() {
    let (g, b, u) = (
        GUID.to_lowercase(),
        BUILD_ID.to_lowercase(),
        UUID.to_lowercase(),
    );
    let same = |p: &str| [p.to_owned(), p.to_owned(), p.to_owned()];
    let cases: Vec<(String, String, [String; 3])> = vec![
        // PDB: GUID upper, age `%x` lower.
        (
            format!("/Foo.pdb/{g}A/Foo.pdb"),
            format!("Foo.pdb/{GUID}a/Foo.pdb"),
            [
                format!("/Foo.pdb/{g}A/Foo.pdb"),
                format!("/foo.pdb/{g}a/foo.pdb"),
                format!("/Foo.pdb/{GUID}a/Foo.pdb"),
            ],
        ),
        // PE image: `%08X%x`.
        (
            "/Renderdoc.dll/61015e74442B000/Renderdoc.dll".into(),
            "Renderdoc.dll/61015E74442b000/Renderdoc.dll".into(),
            [
                "/Renderdoc.dll/61015e74442B000/Renderdoc.dll".into(),
                "/renderdoc.dll/61015e74442b000/renderdoc.dll".into(),
                "/Renderdoc.dll/61015E74442b000/Renderdoc.dll".into(),
            ],
        ),
        // Breakpad: the whole id upper, as dump_syms writes it.
        (
            format!("/Foo.pdb/{g}a/Foo.sym"),
            format!("Foo.pdb/{GUID}A/Foo.sym"),
            [
                format!("/Foo.pdb/{g}a/Foo.sym"),
                format!("/foo.pdb/{g}a/foo.sym"),
                format!("/Foo.pdb/{GUID}A/Foo.sym"),
            ],
        ),
        // ELF, binary and debug info: SSQP ids are lowercase; names as sent.
        (
            format!("/libFoo.so/elf-buildid-{BUILD_ID}/libFoo.so"),
            format!("libFoo.so/elf-buildid-{b}/libFoo.so"),
            [
                format!("/libFoo.so/elf-buildid-{BUILD_ID}/libFoo.so"),
                format!("/libfoo.so/elf-buildid-{b}/libfoo.so"),
                format!("/libFoo.so/elf-buildid-{b}/libFoo.so"),
            ],
        ),
        (
            format!("/_.debug/ELF-BUILDID-SYM-{BUILD_ID}/_.debug"),
            format!("_.debug/elf-buildid-sym-{b}/_.debug"),
            [
                format!("/_.debug/ELF-BUILDID-SYM-{BUILD_ID}/_.debug"),
                format!("/_.debug/elf-buildid-sym-{b}/_.debug"),
                format!("/_.debug/elf-buildid-sym-{b}/_.debug"),
            ],
        ),
        // Mach-O.
        (
            format!("/Foo.dylib/mach-uuid-{UUID}/Foo.dylib"),
            format!("Foo.dylib/mach-uuid-{u}/Foo.dylib"),
            [
                format!("/Foo.dylib/mach-uuid-{UUID}/Foo.dylib"),
                format!("/foo.dylib/mach-uuid-{u}/foo.dylib"),
                format!("/Foo.dylib/mach-uuid-{u}/Foo.dylib"),
            ],
        ),
        // Names that need escaping: `+` (sent raw by the client), space, `#`, a literal `%`
        // followed by hex digits, non-ASCII.
        (
            format!("/libstdc++.so.6/elf-buildid-{b}/libstdc++.so.6"),
            format!("libstdc++.so.6/elf-buildid-{b}/libstdc++.so.6"),
            same(&format!(
                "/libstdc%2B%2B.so.6/elf-buildid-{b}/libstdc%2B%2B.so.6"
            )),
        ),
        (
            format!("/my%20lib.so/elf-buildid-{b}/my%20lib.so"),
            format!("my lib.so/elf-buildid-{b}/my lib.so"),
            same(&format!("/my%20lib.so/elf-buildid-{b}/my%20lib.so")),
        ),
        (
            format!("/lib%231.so/elf-buildid-{b}/lib%231.so"),
            format!("lib#1.so/elf-buildid-{b}/lib#1.so"),
            same(&format!("/lib%231.so/elf-buildid-{b}/lib%231.so")),
        ),
        (
            format!("/lib%2541.so/elf-buildid-{b}/lib%2541.so"),
            format!("lib%41.so/elf-buildid-{b}/lib%41.so"),
            same(&format!("/lib%2541.so/elf-buildid-{b}/lib%2541.so")),
        ),
        (
            format!("/libé.so/elf-buildid-{b}/libé.so"),
            format!("libé.so/elf-buildid-{b}/libé.so"),
            same(&format!("/lib%C3%A9.so/elf-buildid-{b}/lib%C3%A9.so")),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|(_, n, _)| n.as_str()).collect();
    let store = StrictStore::start(&names).await;
    for (m, mode) in ["as-requested", "lowercase", "symsrv"].iter().enumerate() {
        let s = symhub_for(&store, mode);
        for (client, name, sent) in &cases {
            let before = store.received().len();
            let r = s.get(client).await;
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap();
            let received = store.received()[before..].to_vec();
            assert_eq!(received, [sent[m].clone()], "{mode}: {client}");
            // The store holds the symsrv spelling: a mode finds what it spells the same way.
            if sent[m] == sent[2] {
                assert_eq!(status, 200, "{mode}: {client}");
                assert_eq!(body, store.body(name), "{mode}: {client}");
            } else {
                assert_eq!(status, 404, "{mode}: {client}");
            }
        }
    }
}
