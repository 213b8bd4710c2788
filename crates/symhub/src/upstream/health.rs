//! Per-upstream health: SymProxy's "blackout". After `failure_threshold` consecutive failures
//! an upstream is down for `blackout`; then exactly one request is let through as a probe.
//! The probe's success brings the upstream back, its failure starts a new blackout.
//!
//! A failure the upstream answered (a 5xx) is about one object: the same object failing
//! again, in another spelling of its key (`foo.pdb`, `foo.pd_`, `file.ptr` of one id, as a
//! debugger asks them), counts once, so one broken file does not black out an upstream
//! that serves every other one. Failures of the upstream itself (unreachable, timed out,
//! rate limited, a captive portal's page) count every time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failing objects are remembered as already counted.
const RECENT_OBJECTS: usize = 8;

#[derive(Debug)]
pub struct Health {
    threshold: u32,
    blackout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    /// The objects of the last failures that were an object's (see [`Health::failure`]),
    /// most recent first: a debugger retrying two or three broken files in turn.
    recent_objects: [Option<u64>; RECENT_OBJECTS],
    down_until: Option<Instant>,
    probing: bool,
}

/// What a caller may do with the upstream right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// The upstream is down but this caller is its probe.
    Probe,
    Skip,
}

impl Health {
    pub fn new(threshold: u32, blackout: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            blackout,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn admit(&self) -> Admission {
        let mut s = self.state();
        match s.down_until {
            None => Admission::Go,
            Some(until) if Instant::now() < until || s.probing => Admission::Skip,
            Some(_) => {
                s.probing = true;
                Admission::Probe
            }
        }
    }

    pub fn is_down(&self) -> bool {
        self.state().down_until.is_some()
    }

    pub fn success(&self) {
        let mut s = self.state();
        *s = State::default();
    }

    /// Counts a failure; true when it took the upstream down. `object`: the failing
    /// object's identity when the upstream answered and only that object failed, `None`
    /// when the upstream itself did.
    pub fn failure(&self, object: Option<u64>) -> bool {
        let mut s = self.state();
        let was_probing = std::mem::take(&mut s.probing);
        if was_probing && object.is_some() {
            // The probe was answered, with a refusal of one file: the upstream is back;
            // that file is its first failure (a client retrying one broken file kept a
            // healthy upstream down, break-it pass).
            *s = State::default();
            s.recent_objects[0] = object;
            s.consecutive_failures = 1;
            return false;
        }
        if object.is_some() {
            if s.recent_objects.contains(&object) {
                return false;
            }
            s.recent_objects.rotate_right(1);
            s.recent_objects[0] = object;
        }
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        if was_probing || s.consecutive_failures >= self.threshold {
            let newly = s.down_until.is_none();
            s.down_until = Some(Instant::now() + self.blackout);
            return newly || was_probing;
        }
        false
    }

    /// A probe that ended without a verdict (cancelled because a higher-priority upstream
    /// answered) must not keep the upstream locked out of probing forever.
    pub fn release_probe(&self) {
        self.state().probing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blackout_then_single_probe() {
        let h = Health::new(2, Duration::from_millis(30));
        assert_eq!(h.admit(), Admission::Go);
        assert!(!h.failure(None));
        assert!(h.failure(None));
        assert_eq!(h.admit(), Admission::Skip);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(h.admit(), Admission::Probe);
        assert_eq!(h.admit(), Admission::Skip, "only one probe at a time");
        h.failure(None);
        assert_eq!(
            h.admit(),
            Admission::Skip,
            "failed probe starts a new blackout"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(h.admit(), Admission::Probe);
        h.success();
        assert_eq!(h.admit(), Admission::Go);
        assert!(!h.is_down());
    }

    /// One object failing again and again is one failure; different objects, or the
    /// upstream itself, count each time.
    #[test]
    fn one_broken_object_counts_once() {
        let h = Health::new(3, Duration::from_secs(60));
        for _ in 0..10 {
            assert!(!h.failure(Some(7)));
        }
        assert!(!h.failure(Some(8)));
        for _ in 0..10 {
            assert!(!h.failure(Some(7)), "two broken files asked in turn");
            assert!(!h.failure(Some(8)));
        }
        assert!(h.failure(Some(9)), "the third object");
        // A probe answered with one file's 5xx: the upstream answers again.
        let p = Health::new(1, Duration::from_millis(10));
        assert!(p.failure(None));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(p.admit(), Admission::Probe);
        assert!(!p.failure(Some(7)));
        assert_eq!(p.admit(), Admission::Go, "back after an answered probe");
        h.success();
        assert!(!h.failure(None));
        assert!(!h.failure(None));
        assert!(h.failure(None), "the upstream itself, three times");
    }
}
