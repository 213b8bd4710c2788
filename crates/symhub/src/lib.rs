//! symhub: a caching proxy and store for debug symbols.
//!
//! Long-lived services are built once from the [`config::Config`] and shared through `Arc`:
//! [`upstream::Upstreams`] (who to ask), [`cache::Cache`] (what we have and what is being
//! fetched), [`metrics::Metrics`]. [`http`] maps requests onto them. [`serve`] wires it all.

pub mod auth;
pub mod cache;
pub mod config;
pub mod debuginfod;
pub mod history;
pub mod http;
pub mod metrics;
pub mod missing;
pub mod package;
pub mod store;
pub mod symbolicate;
pub mod upload;
pub mod upstream;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Runs the server until `shutdown` is cancelled. Prints one `listening on …` line per
/// listener on stdout once it accepts connections (tests and scripts wait for it).
///
/// `plaintext_keys`: API keys read from `--api-key-file`, hashed here and never kept.
pub async fn serve(
    config: config::Config,
    plaintext_keys: Vec<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let data_dir = &config.storage.data_dir;
    std::fs::create_dir_all(data_dir).with_context(|| {
        format!(
            "cannot create data directory {} (storage.data_dir / --data-dir)",
            data_dir.display()
        )
    })?;
    let metrics = Arc::new(metrics::Metrics::default());
    let upstreams = Arc::new(upstream::Upstreams::new(&config, metrics.clone())?);
    // Opening may connect to PostgreSQL, whose client blocks.
    let storage = config.storage.clone();
    let store = Arc::new(
        tokio::task::spawn_blocking(move || store::SymbolStore::open_with(&storage)).await??,
    );
    let shared = store.is_shared();
    let cache = cache::Cache::open(&config, store.clone(), upstreams, metrics.clone())?;
    let maintenance = tokio::spawn(cache.clone().maintain());
    let keys = Arc::new(auth::ApiKeys::new(
        &config,
        &plaintext_keys,
        Some(store.clone()),
    )?);
    drop(plaintext_keys);
    if keys.require_for_downloads || keys.require_for_metrics {
        let s = store.clone();
        let now = store::unix_millis(std::time::SystemTime::now());
        keys.ensure_some_key(tokio::task::spawn_blocking(move || s.has_usable_keys(now)).await??)?;
    }
    {
        // A key created or revoked by another process or instance reaches this one as a
        // change of the store.
        let keys = Arc::downgrade(&keys);
        store.changes.subscribe(move |change| {
            if let (store::StoreChange::Any, Some(keys)) = (change, keys.upgrade()) {
                keys.forget();
            }
        });
    }
    let packages = Arc::new(package::Packages::new(
        store.clone(),
        config.packages.clone(),
    ));
    {
        let packages = packages.clone();
        tokio::task::spawn_blocking(move || packages.recover()).await??;
    }
    let uploads = Arc::new(upload::Uploads::new(store.clone(), &config));
    let expiry = tokio::spawn({
        let (uploads, packages) = (uploads.clone(), packages.clone());
        async move {
            loop {
                uploads.expire().await;
                if shared {
                    // Another instance may have died mid-ingest or mid-upload; what it left
                    // is removed once its lease runs out.
                    let packages = packages.clone();
                    if let Ok(Err(e)) =
                        tokio::task::spawn_blocking(move || packages.recover()).await
                    {
                        tracing::error!("cannot clean up after other instances: {e:#}");
                    }
                }
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            }
        }
    });
    // Another process on this data dir (`symhub package add --data-dir`), or another
    // instance on a shared store, changes the store behind our back; the database tells us,
    // and memory is dropped.
    let retention = tokio::spawn({
        let (store, every) = (store.clone(), config.retention.interval);
        async move {
            loop {
                let s = store.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.remove_expired()).await {
                    tracing::error!("cannot remove expired transactions: {e:#}");
                }
                tokio::time::sleep(every).await;
            }
        }
    });
    let watcher = tokio::spawn({
        let store = store.clone();
        async move {
            let mut seen = None;
            // Other instances' uploads must show quickly; one indexed read per tick.
            let poll = std::time::Duration::from_millis(if shared { 250 } else { 1000 });
            loop {
                let s = store.clone();
                if let Ok(Ok(v)) = tokio::task::spawn_blocking(move || s.change_count()).await {
                    if seen.is_some_and(|old| old != v) {
                        store.changes.publish(&store::StoreChange::Any);
                    }
                    seen = Some(v);
                }
                tokio::time::sleep(poll).await;
            }
        }
    });
    let app = Arc::new(http::App::new(
        &config,
        cache.clone(),
        uploads,
        packages,
        keys,
        metrics,
    )?);
    let ledger = tokio::spawn(app.ledger.clone().run());
    let history = tokio::spawn(app.metrics.history.clone().run());
    let listeners = http::bind(&config).await?;
    for l in &listeners {
        // Not `println!`, which panics once whoever read the first line has gone.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "symhub: listening on {}", l.describe());
    }
    let names: Vec<_> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    tracing::info!(
        data_dir = %data_dir.display(),
        store = if shared { config.storage.store.as_str() } else { "local" },
        upstreams = ?names,
        "symhub {} serving",
        env!("CARGO_PKG_VERSION")
    );
    http::serve(
        http::front(app.clone()),
        listeners,
        shutdown,
        http::ConnLimits::from_config(&config),
        config.server.max_connections,
        config.server.workers,
    )
    .await?;
    maintenance.abort();
    expiry.abort();
    watcher.abort();
    retention.abort();
    ledger.abort();
    history.abort();
    let c = cache.clone();
    let _ = tokio::task::spawn_blocking(move || c.flush_touches()).await;
    let l = app.ledger.clone();
    let _ = tokio::task::spawn_blocking(move || l.flush()).await;
    tracing::info!("symhub stopped");
    Ok(())
}
