//! Per-upstream health: SymProxy's "blackout". After `failure_threshold` consecutive failures
//! an upstream is down for `blackout`; then exactly one request is let through as a probe.
//! The probe's success brings the upstream back, its failure starts a new blackout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Health {
    threshold: u32,
    blackout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
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

    /// Returns true when this failure took the upstream down.
    pub fn failure(&self) -> bool {
        let mut s = self.state();
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        let was_probing = std::mem::take(&mut s.probing);
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
        assert!(!h.failure());
        assert!(h.failure());
        assert_eq!(h.admit(), Admission::Skip);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(h.admit(), Admission::Probe);
        assert_eq!(h.admit(), Admission::Skip, "only one probe at a time");
        h.failure();
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
}
