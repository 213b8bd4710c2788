//! The debuginfod request parser: never panics; what it accepts is canonical (a source path
//! is its own canonical form and never climbs or names a directory), its own URL path parses
//! back to it, and its SSQP keys read back to candidates that include its build id.
#![no_main]
use libfuzzer_sys::fuzz_target;
use symhub_core::debuginfod::ssqp::{debuginfo_key, executable_key, SsqpElfKey};
use symhub_core::debuginfod::{Artifact, DebuginfodRequest, SourcePath, MAX_BUILD_ID_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(req) = DebuginfodRequest::parse_path(path) else {
        return;
    };
    let id = req.build_id.as_str();
    assert!(id.len() % 2 == 0 && id.len() <= 2 * MAX_BUILD_ID_BYTES && !id.is_empty());
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    match &req.artifact {
        Artifact::Source(p) => {
            let s = p.as_str();
            assert!(s.starts_with('/') && !s.ends_with('/'));
            for bad in ["//", "/./", "/../", "\\"] {
                assert!(!s.contains(bad), "{s:?}");
            }
            assert!(!s.ends_with("/.") && !s.ends_with("/.."));
            assert!(!s.chars().any(char::is_control));
            assert_eq!(
                SourcePath::parse(s).as_ref(),
                Ok(p),
                "canonical is a fixed point"
            );
        }
        Artifact::Section(n) => assert!(!n.as_str().contains('/')),
        Artifact::Debuginfo | Artifact::Executable => {}
    }
    let again = DebuginfodRequest::parse_path(&req.url_path()).expect("own URL path parses");
    assert_eq!(again, req);
    if let Ok(key) = debuginfo_key(&req.build_id) {
        let back = SsqpElfKey::parse(&key).expect("own SSQP key reads back");
        assert!(back.build_id_candidates().contains(&req.build_id));
        let exe = executable_key(&req.build_id, "a.so").expect("same id, plain name");
        assert!(SsqpElfKey::parse(&exe).is_some());
    }
});
