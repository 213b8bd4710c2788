//! bench/write_relay.rs — the cold-miss reference "a proxy that writes the file": the least
//! work any caching proxy that receives the bytes in user space does for a first download.
//!
//! Usage: `write_relay LISTEN_PORT UPSTREAM_PORT DIR` (both on 127.0.0.1). One request per
//! connection: it asks the upstream for the same path (`Connection: close`), passes the
//! response head on, then sends each read of the body to the client and hands it to a
//! writer thread that appends it to a file in DIR, as symhub's fill receives and serves on
//! the connection's thread and writes on another. Nothing else: no cache index, no hash,
//! no fsync, no rename; the file is removed at the end. Standard library only, so
//! `bench/run` builds it with `rustc` (no crate to fetch).
//!
//! Measured on the 2-vCPU VM of issue 17 against C versions of this loop and of variants
//! (writing on the connection's thread, `splice`/`tee` from the upstream socket, `sendfile`
//! to the client): all took 1.56–2.0× a direct download, the same relay writing no file
//! 1.4–1.6×.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Read size, as symhub's fill and the bench's nginx proxies use.
const BUF: usize = 256 * 1024;

fn relay(mut client: TcpStream, upstream_port: u16, file: PathBuf) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = vec![0u8; BUF];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf)?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let Some(path) = text.split_whitespace().nth(1) else {
        return Ok(());
    };
    let mut up = TcpStream::connect(("127.0.0.1", upstream_port))?;
    write!(
        up,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    // Pass the response head on as it comes; what follows it in the same read is body.
    let mut got = Vec::new();
    let body_at = loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    client.write_all(&got)?;
    let mut out = std::fs::File::create(&file)?;
    // At most 16 reads (4 MiB) waiting for the disk, as symhub bounds its write queue.
    let (to_disk, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for chunk in queue {
            out.write_all(&chunk)?;
        }
        Ok(())
    });
    let _ = to_disk.send(got[body_at..].to_vec());
    let result = (|| loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        client.write_all(&buf[..n])?;
        if to_disk.send(buf[..n].to_vec()).is_err() {
            return Err(std::io::Error::other("the writer thread stopped"));
        }
    })();
    drop(to_disk);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")));
    let _ = std::fs::remove_file(&file);
    result.and(written)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, dir] = &args[..] else {
        eprintln!("usage: write_relay LISTEN_PORT UPSTREAM_PORT DIR");
        std::process::exit(2);
    };
    let upstream: u16 = upstream.parse().expect("UPSTREAM_PORT: a port number");
    let listener = TcpListener::bind(("127.0.0.1", listen.parse().expect("LISTEN_PORT")))
        .expect("write_relay: cannot listen");
    let dir = PathBuf::from(dir);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for client in listener.incoming().flatten() {
        let file = dir.join(format!("relay{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::thread::spawn(move || {
            if let Err(e) = relay(client, upstream, file) {
                eprintln!("write_relay: {e}");
            }
        });
    }
}
