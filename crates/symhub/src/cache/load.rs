//! The slow path of a lookup, when memory knows nothing of a key: the store (a stored file,
//! local or only in the bucket), a code-id `.sym` redirect into the store, then the cache
//! index and its negative entries. What is found is remembered in memory.

use std::sync::Arc;

use symhub_core::SymbolKey;

use super::{derive, store_entry, Cache, Entry, Known, Source};
use crate::store::{BlobLocation, StoredSymbol};

impl Cache {
    /// The slow path of a lookup: ask the store, then the cache index.
    /// `slot` and `digest`: where a miss of the key sent as it would be is remembered.
    pub(super) async fn load(
        self: &Arc<Self>,
        key: &SymbolKey,
        slot: &str,
        digest: u64,
        born: u64,
        names_binary: bool,
    ) -> Loaded {
        // Local lookups run here, on the request's own thread: a few indexed reads on
        // readers that never wait for a writer. The hop to the blocking pool and back was
        // two wake-ups of idle threads on every cold miss's way to its first byte: 1.37–1.43
        // against 1.72–2.04 ms for a cold 100 MiB miss after 0.5 s of quiet, direct
        // 0.3–0.6 ms (`coldq.sh`, 2 vCPUs).
        let found = if self.store.lookups_are_local() {
            Ok(self.load_blocking(key, slot, digest, born, names_binary))
        } else {
            let this = self.clone();
            let (key, slot) = (key.clone(), slot.to_owned());
            tokio::task::spawn_blocking(move || {
                this.load_blocking(&key, &slot, digest, born, names_binary)
            })
            .await
        };
        match found {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                tracing::error!("index lookup failed: {e}");
                Loaded::Nothing
            }
            Err(e) => {
                tracing::error!("index lookup task failed: {e}");
                Loaded::Nothing
            }
        }
    }

    fn load_blocking(
        &self,
        key: &SymbolKey,
        slot: &str,
        digest: u64,
        born: u64,
        names_binary: bool,
    ) -> anyhow::Result<Loaded> {
        let norm = key.normalized();
        let found = match crate::debuginfod::executable_build_id(key) {
            // debuginfod's executable: by the store's build-id index, else a package's key
            // derived from an SSQP binary key.
            Some(id) => match self.store.executable_by_build_id(id) {
                Ok(None) => self.store.get(norm),
                found => found,
            },
            None => self.store.get(norm),
        };
        let stored = match found {
            Ok(s) => s,
            Err(e) => {
                // The store's database is unreachable: what this instance cached from
                // upstreams is still good, but nothing may be fetched or remembered as
                // missing, since the store may well have the key.
                tracing::error!(key = norm, "store lookup failed: {e}");
                if let Some(e) = self.index.get(norm)? {
                    return Ok(Loaded::Entry(self.remember(e, born)));
                }
                return Ok(Loaded::Unavailable);
            }
        };
        if let Some(s) = stored {
            let path = match self.store.locate(&s.sha256, false) {
                // Served by a redirect to the bucket: no local copy needed.
                _ if self.store_redirects => self.store.blob_path(&s.sha256),
                BlobLocation::Local(path) => path,
                // Streamed from the bucket by a fill, like an upstream download.
                BlobLocation::Remote | BlobLocation::Url(_) => return Ok(Loaded::Cold(s)),
            };
            // Under the key asked for: the same as the stored key but for debuginfod's
            // executable, found by build id.
            let mut e = store_entry(s);
            e.key = norm.to_owned();
            return Ok(Loaded::Entry(self.remember_at(
                e,
                path,
                Source::Store,
                born,
            )));
        }
        if key.is_triple() && key.name().to_ascii_lowercase().ends_with(".sym") {
            let found = self.store.by_code_id(key.file(), key.id())?;
            // Stored keys are valid keys, so the display form splits back into segments.
            let target = found.as_deref().and_then(|d| {
                let mut it = d.splitn(3, '/');
                let k = SymbolKey::from_segments(it.next()?, it.next()?, it.next()?).ok()?;
                Some(k.url_path(symhub_core::Spelling::AsRequested))
            });
            if let Some(to) = target {
                let to: Arc<str> = to.into();
                self.keep(born, norm, Known::Redirect(to.clone()));
                return Ok(Loaded::Redirect(to));
            }
        }
        // A `.sym` made by another converter version, or without the binary this request
        // names, is made again (and replaced).
        if let Some(e) = self
            .index
            .get(norm)?
            .filter(|e| !derive::remake(&e.upstream, names_binary))
        {
            return Ok(Loaded::Entry(self.remember(e, born)));
        }
        if let Some(until) = self.index.get_negative(slot)? {
            self.keep(born, norm, Known::Negative { digest, until });
            return Ok(Loaded::Negative);
        }
        Ok(Loaded::Nothing)
    }
}

pub(super) enum Loaded {
    Entry(Arc<Entry>),
    /// A stored key whose bytes are only in the bucket.
    Cold(StoredSymbol),
    Redirect(Arc<str>),
    Negative,
    /// A stored key whose bytes cannot be read now (the bucket is down).
    Unavailable,
    Nothing,
}
