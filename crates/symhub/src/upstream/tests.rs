//! Unit tests of the upstream list: which keys an upstream serves, its URLs, and the
//! stability of the wire digest.

use super::*;

fn upstream(exts: &[&str]) -> Upstream {
    let mut c = UpstreamConfig::new("t", "http://127.0.0.1:1/base/");
    c.extensions = exts.iter().map(|s| s.to_string()).collect();
    Upstream::from_config(&c, &Config::default()).unwrap()
}

impl Upstream {
    fn serves_key(&self, key: &SymbolKey) -> bool {
        self.serves(key, None)
    }
}

#[test]
fn extension_filter_matches_cab_names() {
    let u = upstream(&["pdb", "DLL"]);
    let k = |p: &str| SymbolKey::parse_path(p).unwrap();
    assert!(u.serves_key(&k("a.pdb/1/a.pdb")));
    assert!(u.serves_key(&k("a.pdb/1/a.pd_")));
    assert!(u.serves_key(&k("a.dll/1/a.DLL")));
    assert!(!u.serves_key(&k("a.exe/1/a.exe")));
    assert!(!u.serves_key(&k("a.exe/1/a.ex_")));
    assert!(!u.serves_key(&k("a/1/a")));
    assert!(upstream(&[]).serves_key(&k("a/1/a")));
}

#[test]
fn urls_keep_the_base_path() {
    let u = upstream(&[]);
    let k = SymbolKey::parse_path("A.pdb/1/A.pdb").unwrap();
    assert_eq!(u.url_for(&k, None), "http://127.0.0.1:1/base/A.pdb/1/A.pdb");
}

/// The digest is part of every remembered miss's key in the cache index, so it must
/// not change between builds of one configuration: these values were computed when the
/// configured upstreams joined it (the tenth session; misses remembered before are asked
/// again once). Another upstream list gives other digests.
#[test]
fn wire_digests_are_stable() {
    let mut config = Config::default();
    let mut c = UpstreamConfig::new("nuget", "http://127.0.0.1:1/");
    c.forward_headers = vec!["SymbolChecksum".into()];
    config.upstreams.push(c);
    let mut c = UpstreamConfig::new("fedora", "http://127.0.0.1:2/");
    c.protocol = Protocol::Debuginfod;
    c.key_spelling = crate::config::KeySpelling::AsRequested;
    config.upstreams.push(c);
    let ups = Upstreams::new(&config, Arc::new(Metrics::default())).unwrap();
    let key = SymbolKey::parse_path("App.pdb/0123456789ABCDEF0123456789ABCDEF1/App.pdb").unwrap();
    let mut headers = HeaderMap::new();
    let none = ups.wire_digest(&key, &headers);
    headers.insert("symbolchecksum", HeaderValue::from_static("SHA256:0011"));
    let checksum = ups.wire_digest(&key, &headers);
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("10.0.0.1, 10.0.0.2"),
    );
    let hops = ups.wire_digest(&key, &headers);
    // Headers no upstream is sent change nothing (the digest's shortcut for them).
    let mut others = HeaderMap::new();
    others.insert("host", HeaderValue::from_static("symbols.example"));
    others.insert("user-agent", HeaderValue::from_static("curl/8"));
    let unrelated = ups.wire_digest(&key, &others);
    others.insert("symbolchecksum", HeaderValue::from_static("SHA256:0011"));
    let among_others = ups.wire_digest(&key, &others);
    assert_eq!(
        [none, checksum, hops, unrelated, among_others],
        [
            0xb6b01b640ccc0434,
            0xaf199468ac72779f,
            0x10e72852d47060c9,
            0xb6b01b640ccc0434,
            0xaf199468ac72779f
        ]
    );
    config.upstreams[1].url = "http://127.0.0.1:3/".into();
    let moved = Upstreams::new(&config, Arc::new(Metrics::default())).unwrap();
    assert_ne!(moved.wire_digest(&key, &HeaderMap::new()), none);
}
