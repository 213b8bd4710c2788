//! CAB extraction (`foo.pd_` → `foo.pdb`): never panics, never produces more than the limit,
//! and what it produces has exactly the size it announced.
#![no_main]
use libfuzzer_sys::fuzz_target;
use symhub::cache::cab::unpack_single;

fuzz_target!(|data: &[u8]| {
    let mut announced = None;
    let mut produced = 0u64;
    let result = unpack_single(
        std::io::Cursor::new(data),
        1 << 20,
        |len| announced = Some(len),
        |chunk| {
            produced += chunk.len() as u64;
            Ok(())
        },
    );
    assert!(produced <= 1 << 20);
    if let Ok(n) = result {
        assert_eq!(Some(n), announced);
        assert_eq!(n, produced);
    }
});
