//! `/symbolicate/v5` bodies: never panics, what it accepts is within the bounds and every
//! frame names a module of its job, and the fast typed parse accepts only what the `Value`
//! walk accepts, with the same jobs.
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
    use symhub::symbolicate::v5;
    if let Some(jobs) = v5::parse_typed(data, &limits) {
        assert_eq!(Ok(jobs), v5::parse_value(data, &limits));
    }
    if let Ok(jobs) = v5::parse(data, &limits) {
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
