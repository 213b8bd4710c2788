//! A directory of immutable objects named by a hash, written only through atomic commits.
//!
//! Layout under the directory's root:
//! - `tmp/p<pid>-…/` — files being written, in a directory of each process's own
//!   ([`super::scratch`]). Nothing here is ever served; a dead process's directory is
//!   removed by the next process that opens the directory, so a crash at any moment leaves
//!   nothing partial behind, and the server's writes in flight survive an offline command.
//! - `objects/<2 hex>/<64 hex>` — committed objects. An object appears here only by
//!   `rename(2)` of a temp file whose length (and hash) was checked and which was fsynced.
//!
//! Object names are SHA-256 digests of the normalized key, never the key itself, so no
//! client-supplied string ever becomes a path component.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tempfile::TempPath;

use super::scratch::Scratch;
use super::spare::{self, Spare};

/// The on-disk name of a key: hex SHA-256 of its normalized form.
pub fn object_id(normalized_key: &str) -> String {
    hex::encode(Sha256::digest(normalized_key.as_bytes()))
}

#[derive(Debug, Clone)]
pub struct ObjectDir {
    root: PathBuf,
    /// The file of the next proxy download, made ahead ([`spare`]); `None` unless asked
    /// for ([`ObjectDir::with_spare`]) and the filesystem can have one.
    spare: Option<Arc<Spare>>,
    /// This process's directory of temp files.
    scratch: Arc<Scratch>,
}

impl ObjectDir {
    /// Opens (creating if needed) the directory and removes temp files left by dead
    /// processes (see [`super::scratch`]).
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let objects = root.join("objects");
        std::fs::create_dir_all(&objects)
            .with_context(|| format!("cannot create {}", objects.display()))?;
        let tmp = root.join("tmp");
        let scratch = Scratch::open(&tmp)
            .with_context(|| format!("cannot make a directory for temp files in {} (it must be writable by the user symhub runs as)", tmp.display()))?;
        Ok(Self {
            root: root.to_path_buf(),
            spare: None,
            scratch: Arc::new(scratch),
        })
    }

    /// Keeps a file made ahead for [`ObjectDir::writer_hashed_at_end`] (see [`spare`]): for
    /// the directory proxy downloads write to, not for stores that only take uploads.
    pub fn with_spare(mut self) -> Self {
        self.spare = Spare::new(&self.tmp_dir()).map(Arc::new);
        self
    }

    /// Where this process writes temp files: its own directory under `tmp/`.
    pub fn tmp_dir(&self) -> PathBuf {
        self.scratch.path().to_path_buf()
    }

    fn objects_root(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.objects_root().join(&id[..2]).join(id)
    }

    /// A new, uniquely named temp file. The file is deleted when the [`TempPath`] is dropped
    /// before [`ObjectDir::commit`], so an abandoned write cleans up after itself.
    pub fn temp_file(&self) -> io::Result<(File, TempPath)> {
        let f = tempfile::Builder::new()
            .prefix("fill-")
            .tempfile_in(self.tmp_dir())?;
        Ok(f.into_parts())
    }

    /// Makes a fully written temp file visible as object `id`: fsync the data, rename into
    /// place, fsync the directory so the rename itself survives a power cut.
    pub fn commit(&self, file: &File, temp: TempPath, id: &str) -> io::Result<PathBuf> {
        file.sync_all()?;
        let dest = self.path(id);
        let parent = dest.parent().expect("object paths have a parent");
        std::fs::create_dir_all(parent)?;
        temp.persist(&dest).map_err(|e| e.error)?;
        File::open(parent)?.sync_all()?;
        Ok(dest)
    }

    /// A new [`TempObject`] in this directory's `tmp/`, hashing its bytes as they are written.
    pub fn writer(&self) -> io::Result<TempObject> {
        let (file, temp) = self.temp_file()?;
        Ok(TempObject {
            file: Arc::new(file),
            name: Name::Temp(temp),
            hasher: Some(Sha256::new()),
            written: 0,
        })
    }

    /// A new [`TempObject`] whose SHA-256 is computed only at [`TempObject::finish`], by
    /// reading the file back. For a proxy download that clients read while it is written: the
    /// hash (half a second per GiB on this machine's SHA-NI, a third of a fill's CPU) then
    /// delays the commit, not the clients' bytes. A cold 100 MiB miss took 126 ms, now 93 ms
    /// (medians of six, interleaved, 2 cores; a direct download took 45 ms).
    ///
    /// Its file is the [`spare`] when one is ready, so a download does not wait for the
    /// file system to create one.
    pub fn writer_hashed_at_end(&self) -> io::Result<TempObject> {
        let taken = self.spare.as_ref().and_then(|s| Some((s.take()?, s)));
        let (file, name) = match taken {
            Some((file, spare)) => (file, Name::Unnamed(spare.tmp().to_path_buf())),
            None => {
                let (file, temp) = self.temp_file()?;
                (file, Name::Temp(temp))
            }
        };
        Ok(TempObject {
            file: Arc::new(file),
            name,
            hasher: None,
            written: 0,
        })
    }

    pub fn remove(&self, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The one way symhub writes a file it may later serve: bytes appended to a temp file in an
/// [`ObjectDir`]'s `tmp/` by positional writes (so readers may follow it through their own
/// offsets while it grows), counted and hashed as they go; then made visible
/// atomically by [`TempObject::commit`], or deleted when dropped. Used by proxy downloads,
/// bucket copies, uploads and package extraction.
pub struct TempObject {
    file: Arc<File>,
    name: Name,
    /// `None` for a writer hashed only at its end ([`ObjectDir::writer_hashed_at_end`]).
    hasher: Option<Sha256>,
    written: u64,
}

impl TempObject {
    /// Appends `chunk`. Blocking (a local write). Callers bound the length themselves
    /// against [`TempObject::written`] before writing, each with its own limit and error
    /// (`upload.max_size`, a zip entry's declared size, a Content-Length).
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let end = self.written + chunk.len() as u64;
        self.file.write_all_at(chunk, self.written)?;
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        self.written = end;
        Ok(())
    }

    /// Appends all that `from` yields, 256 KiB at a time, unless that would take the file
    /// past `limit` bytes: then it stops and answers `false` (what was written stays).
    /// Blocking.
    pub fn append_from(&mut self, from: &mut impl io::Read, limit: u64) -> io::Result<bool> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                return Ok(true);
            }
            if self.written + n as u64 > limit {
                return Ok(false);
            }
            self.write(&buf[..n])?;
        }
    }

    /// [`TempObject::write`] of several chunks on the blocking pool, for async callers.
    pub async fn write_async(self, chunks: Vec<bytes::Bytes>) -> io::Result<Self> {
        self.spawn_write(chunks).await?
    }

    /// [`TempObject::write`] of several chunks, handed to the blocking pool now: the file
    /// comes back with the handle.
    pub fn spawn_write(
        mut self,
        chunks: Vec<bytes::Bytes>,
    ) -> tokio::task::JoinHandle<io::Result<Self>> {
        tokio::task::spawn_blocking(move || {
            for chunk in chunks {
                self.write(&chunk)?;
            }
            Ok(self)
        })
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// The file, for readers that follow it while it is written.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Hex SHA-256 of what was written so far. Blocking: a writer hashed at its end reads
    /// its file back.
    fn sha256(&self) -> io::Result<String> {
        let hasher = match &self.hasher {
            Some(h) => h.clone(),
            None => self.hash_file()?,
        };
        Ok(hex::encode(hasher.finalize()))
    }

    /// The hash of the file's written bytes, read back 256 KiB at a time. The buffer is no
    /// bigger than the file: a 1 MiB buffer per commit of a 64-byte file left glibc's
    /// per-thread arenas holding +30 MiB after 100,000 small fills (`bench/memory`).
    fn hash_file(&self) -> io::Result<Sha256> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; self.written.min(256 << 10) as usize];
        let mut at = 0;
        while at < self.written {
            let n = (self.written - at).min(buf.len() as u64) as usize;
            self.file.read_exact_at(&mut buf[..n], at)?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        Ok(hasher)
    }

    /// The finished file: its handle, its temp path (the file goes when it is dropped), its
    /// length and hex SHA-256, for a caller that commits it elsewhere (a blob store).
    /// Blocking: a writer hashed at its end reads its file back, and an unnamed file is
    /// named.
    pub fn finish(self) -> io::Result<Finished> {
        let sha256 = self.sha256()?;
        let temp = match self.name {
            Name::Temp(temp) => temp,
            Name::Unnamed(tmp) => spare::name(&self.file, &tmp)?,
        };
        Ok(Finished {
            sha256,
            size: self.written,
            file: self.file,
            temp,
        })
    }
}

/// Where a [`TempObject`]'s file is.
enum Name {
    /// Named in `tmp/`, deleted when dropped.
    Temp(TempPath),
    /// Not named yet ([`spare`]): named in this `tmp/` when finished, gone when dropped.
    Unnamed(PathBuf),
}

/// A fully written [`TempObject`], not yet visible anywhere.
pub struct Finished {
    pub file: Arc<File>,
    pub temp: TempPath,
    pub size: u64,
    pub sha256: String,
}

impl Finished {
    /// Makes the file visible as object `id` of `dir` (see [`ObjectDir::commit`]).
    pub fn commit(self, dir: &ObjectDir, id: &str) -> io::Result<PathBuf> {
        dir.commit(&self.file, self.temp, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy download writes into the spare made ahead: nothing shows in `tmp/` while it
    /// is written or when it is abandoned, it is named only when finished, and the next
    /// spare is made on the blocking pool once the taker yields.
    #[tokio::test]
    async fn a_download_writes_into_an_unnamed_spare_named_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let objects = ObjectDir::open(dir.path()).unwrap().with_spare();
        let listed = || std::fs::read_dir(objects.tmp_dir()).unwrap().count();
        let spare = objects
            .spare
            .clone()
            .expect("ext4 and tmpfs have O_TMPFILE");

        let mut w = objects.writer_hashed_at_end().unwrap();
        w.write(b"symbols").unwrap();
        assert_eq!(listed(), 0, "an unnamed file is not in tmp/");
        drop(w);
        assert_eq!(listed(), 0);
        // The next spare is not made while the taker still runs (its wake-up of the
        // blocking pool would be on a cold miss's way to its first byte): only once it
        // yields.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!spare.is_ready(), "made before the taker yielded");

        for _ in 0..100 {
            if spare.is_ready() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut w = objects.writer_hashed_at_end().unwrap();
        assert!(
            matches!(w.name, Name::Unnamed(_)),
            "the spare was made again"
        );
        w.write(b"more symbols").unwrap();
        let done = w.finish().unwrap();
        assert_eq!(listed(), 1, "named when finished");
        let path = done.commit(&objects, &object_id("k")).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"more symbols");
        assert_eq!(listed(), 0);
    }

    /// Both writers name a file by the SHA-256 of exactly what was written: the one hashing
    /// as it goes, and the one reading its file back at the end (1 MiB at a time, so the
    /// sizes cross that buffer's edges).
    #[test]
    fn a_file_hashed_at_its_end_has_the_hash_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let objects = ObjectDir::open(dir.path()).unwrap();
        for size in [0usize, 1, (1 << 20) - 1, 1 << 20, (5 << 19) + 3] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            let expected = hex::encode(Sha256::digest(&bytes));
            for mut w in [
                objects.writer().unwrap(),
                objects.writer_hashed_at_end().unwrap(),
            ] {
                for piece in bytes.chunks(300_007) {
                    w.write(piece).unwrap();
                }
                assert_eq!(w.sha256().unwrap(), expected, "{size} bytes");
                let done = w.finish().unwrap();
                assert_eq!((done.size, done.sha256), (size as u64, expected.clone()));
            }
        }
    }
}
