//! Upload sessions of sym-upload v2: created, given a body by `PUT`, completed, or expired
//! with their bodies.

use std::path::PathBuf;
use std::time::SystemTime;

use super::db::{p, DbResult};
use super::symbols::{from_millis, Received, SymbolStore};
use super::unix_millis;

/// An upload session of the v2 protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub upload_key: String,
    pub token_sha256: String,
    pub expires: SystemTime,
    /// `None` until the PUT has arrived.
    pub received: Option<(u64, String)>,
}

impl SymbolStore {
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub fn count_sessions(&self) -> DbResult<u64> {
        let now = unix_millis(SystemTime::now());
        Ok(self
            .db
            .query_opt("SELECT COUNT(*) FROM uploads WHERE expires > ?1", p![now])?
            .map_or(0, |r| r.int(0) as u64))
    }

    pub fn create_session(&self, s: &Session) -> DbResult<()> {
        self.db.execute(
            "INSERT INTO uploads (upload_key, token_sha256, expires) VALUES (?1, ?2, ?3)",
            p![&s.upload_key, &s.token_sha256, unix_millis(s.expires)],
        )?;
        Ok(())
    }

    /// A live (unexpired) session.
    pub fn session(&self, upload_key: &str) -> DbResult<Option<Session>> {
        let now = unix_millis(SystemTime::now());
        let row = self.db.query_opt(
            "SELECT token_sha256, expires, size, sha256 FROM uploads
             WHERE upload_key = ?1 AND expires > ?2",
            p![upload_key, now],
        )?;
        Ok(row.map(|r| Session {
            upload_key: upload_key.to_owned(),
            token_sha256: r.text(0),
            expires: from_millis(r.int(1)),
            received: r.opt_int(2).zip(r.opt_text(3)).map(|(n, h)| (n as u64, h)),
        }))
    }

    /// Keeps the PUT body of a session where any instance can complete it, then records it;
    /// false if the session already had one (tokens are single-use).
    pub fn save_received(&self, upload_key: &str, received: Received) -> anyhow::Result<bool> {
        match self.blobs.bucket() {
            None => {
                received
                    .path
                    .persist(self.received_path(upload_key))
                    .map_err(|e| e.error)?;
            }
            Some(b) => {
                let file = std::fs::File::open(&received.path)?;
                b.upload_file(&file, &b.upload_path(upload_key))?;
            }
        }
        Ok(self.db.execute(
            "UPDATE uploads SET size = ?2, sha256 = ?3 WHERE upload_key = ?1 AND size IS NULL",
            p![upload_key, received.size, &received.sha256],
        )? == 1)
    }

    /// The PUT body of a session, as a local file (fetched from the bucket when shared).
    pub fn take_received(
        &self,
        upload_key: &str,
        size: u64,
        sha256: &str,
    ) -> anyhow::Result<Received> {
        let path = match self.blobs.bucket() {
            None => tempfile::TempPath::try_from_path(self.received_path(upload_key))?,
            Some(b) => {
                let done = b.download(&b.upload_path(upload_key), Some(size))?;
                let (temp, sha) = (done.temp, done.sha256);
                if sha != sha256 {
                    anyhow::bail!("the stored body of upload {upload_key} changed since its PUT");
                }
                temp
            }
        };
        Ok(Received {
            path,
            size,
            sha256: sha256.to_owned(),
        })
    }

    fn received_path(&self, upload_key: &str) -> PathBuf {
        self.uploads_dir().join(upload_key)
    }

    pub fn end_session(&self, upload_key: &str) -> DbResult<()> {
        self.db
            .execute("DELETE FROM uploads WHERE upload_key = ?1", p![upload_key])?;
        match self.blobs.bucket() {
            None => {
                let _ = std::fs::remove_file(self.received_path(upload_key));
            }
            Some(b) => {
                let _ = b.delete(&b.upload_path(upload_key));
            }
        }
        Ok(())
    }

    /// Deletes expired sessions and their files, and local files no session owns. Blocking.
    pub fn expire_sessions(&self) -> DbResult<usize> {
        let now = unix_millis(SystemTime::now());
        let expired: Vec<String> = self
            .db
            .query(
                "SELECT upload_key FROM uploads WHERE expires <= ?1",
                p![now],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect();
        for key in &expired {
            self.end_session(key)?;
        }
        if let Ok(dir) = std::fs::read_dir(self.uploads_dir()) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if self.session(&name)?.is_none() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // Shared claims whose writer died.
        self.db
            .execute("DELETE FROM blob_claims WHERE until <= ?1", p![now])?;
        Ok(expired.len())
    }
}
