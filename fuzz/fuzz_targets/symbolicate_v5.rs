//! `/symbolicate/v5` bodies: never panics, and what it accepts is within the bounds and
//! every frame names a module of its job.
#![no_main]
use libfuzzer_sys::fuzz_target;
use symhub::config::SymbolicationConfig;

fuzz_target!(|data: &[u8]| {
    let limits = SymbolicationConfig {
        max_jobs: 3,
        max_modules: 8,
        max_frames: 64,
        ..SymbolicationConfig::default()
    };
    if let Ok(jobs) = symhub::symbolicate::v5::parse(data, &limits) {
        assert!(jobs.len() <= 3);
        for job in jobs {
            assert!(job.modules.len() <= 8);
            assert!(job.stacks.iter().map(Vec::len).sum::<usize>() <= 64);
            for (index, _) in job.stacks.iter().flatten() {
                assert!(index.is_none_or(|i| i < job.modules.len()));
            }
        }
    }
});
