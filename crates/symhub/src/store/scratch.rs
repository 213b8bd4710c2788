//! Each process's own directory of files being written, under an object directory's `tmp/`.
//!
//! Several processes share a data directory: the server, and the offline commands the README
//! lets an operator run beside it (`symhub key list --data-dir`, `symhub upload --data-dir`,
//! `symhub stackwalk --data-dir`). Each writes its temp files in a directory of its own,
//! `tmp/p<pid>-<random>/`, and holds an exclusive `flock(2)` on it while it lives. Whoever
//! opens the object directory removes the directories nobody holds (left by a crash or a
//! kill), and never touches a live one: emptying all of `tmp/` at every open cut the
//! server's uploads in flight whenever an offline command ran (break-it pass: 500s), and an
//! offline command run as root left `tmp/` owned by root, failing every later upload of a
//! server running as another user.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{flock, FlockOperation};

/// A loose file in `tmp/` (written by a symhub older than per-process directories) is left
/// alone this long after its last write: it may still be another process's upload.
const LOOSE_FILE_AGE: Duration = Duration::from_secs(3600);

/// A directory younger than this is left alone even if nobody holds its lock: its owner may
/// be between making it and locking it (a re-test pass: of 60 commands started at once, a
/// few removed each other's new directories, and a server lost its own).
const NEW_DIR_AGE: Duration = Duration::from_secs(60);

/// This process's directory under `tmp/`, locked as long as it is held.
#[derive(Debug)]
pub(super) struct Scratch {
    path: PathBuf,
    /// The open directory, holding the lock.
    _lock: File,
}

impl Scratch {
    /// Clears what dead processes left in `tmp` (creating it if needed), then makes and
    /// locks this process's directory there. A leftover that cannot be removed (another
    /// user's) is logged and left.
    pub(super) fn open(tmp: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(tmp)?;
        for entry in std::fs::read_dir(tmp)? {
            let entry = entry?;
            if let Err(e) = clear_if_dead(&entry) {
                tracing::warn!(path = %entry.path().display(), "cannot remove a leftover temp file: {e}");
            }
        }
        let path = tempfile::Builder::new()
            .prefix(&format!("p{}-", std::process::id()))
            .tempdir_in(tmp)?
            .keep();
        let lock = File::open(&path)?;
        // Blocking: another process may hold it for a moment, judging it (never past
        // `NEW_DIR_AGE`, so it leaves it be).
        flock(&lock, FlockOperation::LockExclusive)?;
        Ok(Self { path, _lock: lock })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    /// Removes the directory if nothing is left in it (a temp file still named there, whose
    /// writer outlived its object directory, is cleared by the next open instead).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Removes `entry` of `tmp/` if no live process owns it: a directory whose lock can be
/// taken, or a loose file untouched for [`LOOSE_FILE_AGE`].
fn clear_if_dead(entry: &std::fs::DirEntry) -> io::Result<()> {
    let path = entry.path();
    let age = |meta: std::fs::Metadata| -> io::Result<Duration> {
        Ok(SystemTime::now()
            .duration_since(meta.modified()?)
            .unwrap_or_default())
    };
    if entry.file_type()?.is_dir() {
        if age(entry.metadata()?)? < NEW_DIR_AGE {
            return Ok(());
        }
        let dir = File::open(&path)?;
        match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
            // Held while it is removed: no process can be using it.
            Ok(()) => std::fs::remove_dir_all(&path),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else {
        if age(entry.metadata()?)? > LOOSE_FILE_AGE {
            std::fs::remove_file(&path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live process's directory and its files survive another open; a dead one's go.
    #[test]
    fn another_open_keeps_live_directories_and_clears_dead_ones() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        let live = Scratch::open(&tmp).unwrap();
        std::fs::write(live.path().join("upload"), b"in flight").unwrap();
        // A dead process's directory: no lock held.
        let dead = tmp.join("p1-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("fill-x"), b"left by a crash").unwrap();
        let long_ago = SystemTime::now() - 2 * NEW_DIR_AGE;
        File::open(&dead).unwrap().set_modified(long_ago).unwrap();
        // One just made, whose owner has not locked it yet.
        let unlocked_yet = tmp.join("p2-new");
        std::fs::create_dir(&unlocked_yet).unwrap();
        let fresh_loose = tmp.join("fill-old-version");
        std::fs::write(&fresh_loose, b"maybe live").unwrap();

        let other = Scratch::open(&tmp).unwrap();
        assert!(live.path().join("upload").exists(), "a live upload is kept");
        assert!(!dead.exists(), "a dead process's directory is cleared");
        assert!(
            unlocked_yet.exists(),
            "a new directory is left to its owner"
        );
        assert!(fresh_loose.exists(), "a recent loose file is kept");
        assert_ne!(live.path(), other.path());
        drop(other);
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert_eq!(left.len(), 3, "the empty directory went with its owner");
    }

    /// Many processes opening at once each keep their own directory (a re-test pass saw a
    /// few in 60 remove another's before it was locked).
    #[test]
    fn opens_at_the_same_moment_keep_their_own_directories() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        for _ in 0..5 {
            let opened: Vec<_> = std::thread::scope(|s| {
                let all: Vec<_> = (0..24).map(|_| s.spawn(|| Scratch::open(&tmp))).collect();
                all.into_iter()
                    .map(|t| t.join().unwrap().unwrap())
                    .collect()
            });
            for o in &opened {
                assert!(o.path().is_dir(), "{} was removed", o.path().display());
            }
        }
    }
}
