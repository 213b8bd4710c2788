//! What changed in the store, told at once to everything in this process that keeps answers
//! derived from it (the proxy cache's memory of hits, misses and code-id redirects).
//!
//! Listeners run on the committing thread, after the transaction and before the write is
//! acknowledged, so a client that uploads and then asks is never answered from memory older
//! than its upload. Other processes on the same data dir and other instances on a shared
//! store learn of changes through the database's change counter, which the server polls and
//! publishes here as [`StoreChange::Any`].

use std::sync::RwLock;

use symhub_core::SymbolKey;

/// One change of the store.
#[derive(Debug)]
pub enum StoreChange<'a> {
    /// These keys now answer with other bytes (an upload). `code`: the module's code file
    /// and code id, whose code-id lookups may now find it.
    Keys {
        keys: &'a [SymbolKey],
        code: Option<(&'a str, &'a str)>,
    },
    /// Any number of keys may have changed: a package came or went, or another process or
    /// instance wrote.
    Any,
}

type Listener = Box<dyn Fn(&StoreChange<'_>) + Send + Sync>;

/// The store's listeners.
#[derive(Default)]
pub struct ChangeFeed {
    listeners: RwLock<Vec<Listener>>,
}

impl ChangeFeed {
    pub fn subscribe(&self, listener: impl Fn(&StoreChange<'_>) + Send + Sync + 'static) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(listener));
    }

    pub fn publish(&self, change: &StoreChange<'_>) {
        for l in self
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            l(change);
        }
    }
}
