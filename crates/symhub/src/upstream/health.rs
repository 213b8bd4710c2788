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

use symhub_core::SymbolKey;

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

/// What a failure of `key` is about, for [`Health::failure`]: its file and id, whatever the
/// last segment (`foo.pdb`, `foo.pd_` and `file.ptr` of one id are one object).
pub(super) fn object_of(key: &SymbolKey) -> u64 {
    use std::hash::BuildHasher;
    let norm = key.normalized();
    let object = norm
        .rsplit_once('/')
        .map_or(norm, |(file_and_id, _)| file_and_id);
    // Fixed keys: compared within this process only.
    std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(object)
}

/// How many files are remembered per upstream in each [`TimedObjects`].
const TIMED_KEPT: usize = 64;

/// Files an upstream failed lately, each for `ttl`, keyed like [`Health::failure`]'s
/// objects (every spelling of a file and id). Two uses ([`super::Upstream`]):
/// - broken off in the middle of their body (a mirror's size cap, a corrupt object, a proxy
///   that cuts long transfers), for `blackout`: asked of it last, after every other upstream
///   that may have them, so such a file comes whole from the next upstream instead of cut at
///   every request (break-it pass: the first upstream's headers always won the race);
/// - not answered (timeout, unreachable) a moment ago: not asked again at once, so the
///   `foo.pd_` that follows a `foo.pdb` does not wait for a second timeout (break-it pass:
///   every PDB miss took two `first_byte_timeout`s of a hanging upstream).
#[derive(Debug)]
pub struct TimedObjects {
    ttl: Duration,
    /// (object, until), oldest first; at most [`TIMED_KEPT`].
    list: Mutex<Vec<(u64, Instant)>>,
}

impl TimedObjects {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            list: Mutex::default(),
        }
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Instant)>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `key`'s file.
    pub fn note(&self, key: &SymbolKey) {
        let (object, now) = (object_of(key), Instant::now());
        let mut list = self.list();
        list.retain(|(o, until)| *o != object && *until > now);
        if list.len() == TIMED_KEPT {
            list.remove(0);
        }
        list.push((object, now + self.ttl));
    }

    /// Whether `key`'s file was remembered within the last `ttl`.
    pub fn has(&self, key: &SymbolKey) -> bool {
        let object = object_of(key);
        let now = Instant::now();
        self.list()
            .iter()
            .any(|(o, until)| *o == object && *until > now)
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

    #[test]
    fn a_broken_file_is_remembered_in_any_spelling_until_its_time_is_up() {
        let key = |s: &str| SymbolKey::parse_path(s).unwrap();
        let broken = TimedObjects::new(Duration::from_secs(60));
        broken.note(&key("foo.pdb/1/foo.pdb"));
        assert!(broken.has(&key("FOO.pdb/1/foo.pd_")));
        assert!(!broken.has(&key("foo.pdb/2/foo.pdb")));
        let gone = TimedObjects::new(Duration::ZERO);
        gone.note(&key("foo.pdb/1/foo.pdb"));
        assert!(!gone.has(&key("foo.pdb/1/foo.pdb")));
        for i in 0..=TIMED_KEPT {
            broken.note(&key(&format!("f{i}.pdb/1/f{i}.pdb")));
        }
        assert!(
            !broken.has(&key("foo.pdb/1/foo.pdb")),
            "the oldest is forgotten"
        );
        assert!(broken.has(&key(&format!("f{TIMED_KEPT}.pdb/1/f{TIMED_KEPT}.pdb"))));
    }
}
