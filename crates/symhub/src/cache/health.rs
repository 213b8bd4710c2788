//! What `/healthz` reports: each upstream up or down, for a shared store whether its
//! bucket and database answer (a probe, so health recovers without traffic), and whether
//! the data directory is still there to write in.

use std::sync::Arc;

use super::Cache;

pub struct HealthReport {
    /// Each upstream's name and whether it is in blackout.
    pub upstreams: Vec<(Arc<str>, bool)>,
    /// `(bucket_ok, database_ok)` of a shared store; `None` for a local one.
    pub store: Option<(bool, bool)>,
    /// Whether the cache's and the store's directories of files being written still
    /// exist: a data dir deleted or unmounted under the server fails every miss (break-it
    /// pass: `/healthz` said `ok` meanwhile).
    pub data_dir: bool,
}

impl HealthReport {
    pub fn degraded(&self) -> bool {
        self.upstreams.iter().any(|(_, down)| *down)
            || self.store.is_some_and(|(bucket, db)| !bucket || !db)
            || !self.data_dir
    }
}

impl Cache {
    pub async fn health(&self) -> HealthReport {
        let upstreams = self
            .upstreams
            .list()
            .iter()
            .map(|u| (u.name.clone(), u.health.is_down()))
            .collect();
        // Only a shared store has remote parts to check (a blocking probe).
        let store = if self.store.is_shared() {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.shared_health())
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let data_dir = [self.objects.tmp_dir(), self.store.tmp_dir()]
            .iter()
            .all(|d| d.is_dir());
        HealthReport {
            upstreams,
            store,
            data_dir,
        }
    }
}
