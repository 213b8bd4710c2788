//! A temp file made ahead of the next proxy download.
//!
//! Creating a file costs 200–650 µs on this machine's ext4 (`open(O_CREAT|O_EXCL)`, p50 idle
//! and under load). A cold miss paid that between its upstream's headers and its client's, on
//! the connection's worker thread, where it also stalled every other connection. The spare is
//! made beforehand on the blocking pool, and a download takes it at no cost.
//!
//! The spare is an unnamed file (`O_TMPFILE`): it never shows in `tmp/`, and it vanishes by
//! itself if the process dies. It gets a name only when it is finished: `linkat` of
//! `/proc/self/fd/<fd>` to a fresh temp name, which needs no privilege (unlike
//! `AT_EMPTY_PATH`). From there it commits like any temp file. Where the filesystem or `/proc`
//! does not allow this (probed once, at open), there is no spare, and every writer names its
//! file at once, as before.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{linkat, openat, AtFlags, Mode, OFlags, CWD};
use tempfile::TempPath;

/// At most one unnamed temp file, ready for the next writer that wants one.
#[derive(Debug)]
pub(super) struct Spare {
    tmp: PathBuf,
    file: Mutex<Option<File>>,
}

impl Spare {
    /// A spare for `tmp` with its first file made, or `None` where unnamed files cannot be
    /// made and named there.
    pub(super) fn new(tmp: &Path) -> Option<Self> {
        let probe = unnamed(tmp).and_then(|f| name(&f, tmp));
        if let Err(e) = probe {
            tracing::debug!(dir = %tmp.display(), "no unnamed temp files here ({e}); each download creates its file");
            return None;
        }
        let spare = Self {
            tmp: tmp.to_path_buf(),
            file: Mutex::new(unnamed(tmp).ok()),
        };
        Some(spare)
    }

    /// The spare file, if one is ready; the next is made on the blocking pool (outside a
    /// runtime, by the next caller that finds none).
    pub(super) fn take(self: &Arc<Self>) -> Option<File> {
        let taken = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            // Behind what is ready now (a cold miss's response headers, its first write):
            // waking an idle blocking thread cost the caller's thread 0.1–0.3 ms of
            // futex_wake on a VM, on the way to its client's first byte (strace).
            runtime.spawn(async move {
                tokio::task::yield_now().await;
                tokio::task::spawn_blocking(move || this.refill());
            });
        }
        taken
    }

    fn refill(&self) {
        match unnamed(&self.tmp) {
            Ok(f) => {
                let mut slot = self.file.lock().unwrap_or_else(|e| e.into_inner());
                if slot.is_none() {
                    *slot = Some(f);
                }
            }
            Err(e) => {
                tracing::warn!(dir = %self.tmp.display(), "cannot make a spare temp file: {e}")
            }
        }
    }

    pub(super) fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Whether a file is ready (tests wait for the refill).
    #[cfg(test)]
    pub(super) fn is_ready(&self) -> bool {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

/// A new unnamed file in `dir`, readable and writable, that can be given a name later.
fn unnamed(dir: &Path) -> io::Result<File> {
    let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
    let fd = openat(CWD, dir, flags, Mode::from_raw_mode(0o600))?;
    Ok(File::from(fd))
}

/// Gives the unnamed `file` a fresh temp name in `tmp`; the name goes when the returned path
/// is dropped, as any temp file's.
pub(super) fn name(file: &File, tmp: &Path) -> io::Result<TempPath> {
    let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let named = tempfile::Builder::new()
        .prefix("fill-")
        .make_in(tmp, |path| {
            linkat(CWD, fd_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW)
                .map_err(io::Error::from)
        })?;
    Ok(named.into_temp_path())
}
