//! Raw HTTP/1.1, byte for byte as a real client sends it, with no client-side
//! normalization: one-shot requests, and a keep-alive connection (`RawConn`) that reads
//! responses with a Content-Length or chunked bodies.

use std::io::{Read, Write};
use std::time::Duration;

/// Sends raw bytes as a request over TCP and returns the status line and all that came back.
pub fn raw_request(base_url: &str, request: &[u8]) -> String {
    let addr = base_url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET <path>` over a UNIX socket with `Connection: close`, and all that came back (head
/// and body), as nginx or any local client in front of symhub sends it.
pub fn unix_get(socket: &std::path::Path, path: &str, extra_headers: &str) -> Vec<u8> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra_headers}\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// `GET <path>` sent byte for byte, with no client-side normalization.
pub fn raw_get(base_url: &str, path: &[u8]) -> String {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw_request(base_url, &req)
}

pub struct RawConn {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RawConn {
    pub fn open(base_url: &str) -> Self {
        let addr = base_url.strip_prefix("http://").unwrap();
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends a request whose response has no body whatever its headers say (`HEAD`), and
    /// returns that response's head.
    pub fn send_head(&mut self, request: &[u8]) -> String {
        self.stream.write_all(request).unwrap();
        self.read_head()
    }

    fn read_head(&mut self) -> String {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        head
    }

    pub fn send(&mut self, request: &[u8]) -> RawResponse {
        self.stream.write_all(request).unwrap();
        let head = self.read_head();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let lower = head.to_ascii_lowercase();
        let body = if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap())
        {
            while self.buf.len() < len {
                self.fill();
            }
            self.buf.drain(..len).collect()
        } else if lower.contains("transfer-encoding: chunked") {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill();
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&self.buf[..line_end]).trim(),
                    16,
                )
                .unwrap();
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill();
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            Vec::new()
        };
        RawResponse { status, head, body }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// A request body sent with `Transfer-Encoding: chunked`, as libcurl sends a PUT of a file.
pub fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(16 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
