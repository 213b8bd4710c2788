//! bench/write_relay.rs — the cold-miss reference "a proxy that writes the file": the least
//! work any caching proxy that receives the bytes in user space does for a first download.
//!
//! Usage: `write_relay LISTEN_PORT UPSTREAM_PORT DIR` (both on 127.0.0.1). One request per
//! connection: it asks the upstream for the same path (`Connection: close`), passes the
//! response head on, then for each read of the body writes it to a file in DIR and to the
//! client, on the connection's one thread, as symhub's fill does (receive and serve on one
//! thread; symhub writes on another). Nothing else: no cache index, no hash, no fsync, no
//! rename; the file is removed at the end. Standard library only, so `bench/run` builds it
//! with `rustc` (no crate to fetch).
//!
//! Measured on the 2-vCPU VM of issue 17 against a C version of the same loop, and of
//! variants (a writer thread, `splice`/`tee` from the upstream socket, `sendfile` to the
//! client): all took 1.56–2.0× a direct download, the same relay writing no file 1.4–1.6×.

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
    out.write_all(&got[body_at..])?;
    let result = (|| loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        client.write_all(&buf[..n])?;
    })();
    let _ = std::fs::remove_file(&file);
    result
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
