//! A [`TempObject`] written on the blocking pool one batch behind its network reader (an
//! upload's body): the next batch is read while the last one is written, so a slow disk
//! write does not stop the client's bytes from being taken. Writes stay in order: a batch
//! waits for the one before it.
//!
//! A fill does not use it: a cold 100 MiB miss measured no faster with it on this 2-core
//! machine (`bench/README.md`), and a fill's readers must see each batch as soon as it is
//! written, which sequential writes give without a `select!`.

use std::io;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::TempObject;

pub struct Pipelined {
    idle: Option<TempObject>,
    busy: Option<JoinHandle<io::Result<TempObject>>>,
}

impl Pipelined {
    pub fn new(temp: TempObject) -> Self {
        Self {
            idle: Some(temp),
            busy: None,
        }
    }

    /// Waits until no batch is being written, and gives the file back.
    async fn settled(&mut self) -> io::Result<TempObject> {
        if let Some(busy) = self.busy.take() {
            self.idle = Some(busy.await.map_err(io::Error::other)??);
        }
        // Only a failed write leaves neither, and its error was returned.
        self.idle
            .take()
            .ok_or_else(|| io::Error::other("an earlier write failed"))
    }

    /// Hands `chunks` to the blocking pool once the batch before them is written. An error
    /// is that earlier batch's.
    pub async fn write(&mut self, chunks: Vec<Bytes>) -> io::Result<()> {
        self.busy = Some(self.settled().await?.spawn_write(chunks));
        Ok(())
    }

    /// The temp file once every batch is written.
    pub async fn finish(mut self) -> io::Result<TempObject> {
        self.settled().await
    }
}
