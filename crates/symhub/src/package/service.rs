//! The package service as the running server calls it: each operation on the blocking pool,
//! since the store's database and the zip reader block. The offline CLI calls the blocking
//! methods in [`super`] directly.

use std::sync::Arc;

use super::{Ingested, PackageError, Packages};
use crate::store::packages::{PackageInfo, PackageKey};
use crate::store::symbols::Received;

async fn off_thread<T: Send + 'static, E: From<anyhow::Error> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| E::from(anyhow::Error::new(e)))?
}

impl Packages {
    /// Ingests a received zip as package `name` (adding it, or replacing it if
    /// `may_replace`).
    pub async fn ingest(
        self: &Arc<Self>,
        name: String,
        zip: Received,
        may_replace: bool,
    ) -> Result<Ingested, PackageError> {
        let this = self.clone();
        off_thread(move || this.ingest_file(&name, &zip.path, may_replace, &|_| {})).await
    }

    /// Every package.
    pub async fn all(self: &Arc<Self>) -> anyhow::Result<Vec<PackageInfo>> {
        let this = self.clone();
        off_thread(move || this.list()).await
    }

    /// A package and a page of its keys, if it exists.
    pub async fn page(
        self: &Arc<Self>,
        name: String,
        after: String,
        limit: usize,
    ) -> anyhow::Result<Option<(PackageInfo, Vec<PackageKey>)>> {
        let this = self.clone();
        off_thread(move || this.show(&name, &after, limit)).await
    }

    /// Removes a package; false if there was none of that name.
    pub async fn delete(self: &Arc<Self>, name: String) -> anyhow::Result<bool> {
        let this = self.clone();
        off_thread(move || this.remove(&name)).await
    }
}
