//! Content encodings of upstream responses: part of the response, never of the file.
//!
//! Buckets that keep `.sym` files gzip-encoded (Mozilla's symbol bucket did) answer
//! `Content-Encoding: gzip` whatever the request's `Accept-Encoding` said, because S3 and GCS
//! send the encoding stored with the object (RFC 9110 §8.4 makes the encoding a property of
//! the representation sent). symhub asks with no `Accept-Encoding`, decodes whatever comes
//! while it streams, and caches the file itself: the length an upstream announces is checked
//! against the bytes as received, the SHA-256 is of the decoded file.
//!
//! An encoding symhub cannot decode (`compress`, a chain of several, anything unknown) makes
//! that upstream's answer a failure, so the next upstream is asked and nothing is cached.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::HeaderMap;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::cache::read::CHUNK;

/// A body stream of decoded bytes.
pub type Decoded = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// How an upstream encoded a response body (`Content-Encoding`, RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// HTTP's `deflate` is the zlib format (RFC 1950), not raw deflate.
    Deflate,
    Brotli,
    Zstd,
}

impl Encoding {
    /// The encoding of a response, or why symhub cannot decode it.
    pub fn of(headers: &HeaderMap) -> Result<Self, String> {
        let mut found = Self::Identity;
        for value in headers.get_all(http::header::CONTENT_ENCODING) {
            let value = value
                .to_str()
                .map_err(|_| "a Content-Encoding that is not text".to_owned())?;
            for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let this = match token.to_ascii_lowercase().as_str() {
                    "identity" => continue,
                    "gzip" | "x-gzip" => Self::Gzip,
                    "deflate" => Self::Deflate,
                    "br" => Self::Brotli,
                    "zstd" => Self::Zstd,
                    other => return Err(format!("Content-Encoding `{other}` cannot be decoded")),
                };
                if found != Self::Identity {
                    return Err(format!(
                        "Content-Encoding `{value}`: more than one encoding"
                    ));
                }
                found = this;
            }
        }
        Ok(found)
    }

    pub fn is_identity(self) -> bool {
        self == Self::Identity
    }

    /// Decodes `raw` while it streams. `received` counts the bytes as they came from the
    /// upstream (before decoding), for the `Content-Length` check.
    pub fn decode<S, E>(self, raw: S, received: Arc<AtomicU64>) -> Decoded
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let raw = raw.map_err(io::Error::other).inspect_ok(move |b| {
            received.fetch_add(b.len() as u64, Ordering::Relaxed);
        });
        if self == Self::Identity {
            return Box::pin(raw);
        }
        let reader = StreamReader::new(raw);
        match self {
            Self::Identity => unreachable!("returned above"),
            Self::Gzip => {
                let mut d = GzipDecoder::new(reader);
                // Concatenated gzip members are one valid body (RFC 1952 §2.2).
                d.multiple_members(true);
                Box::pin(ReaderStream::with_capacity(d, CHUNK))
            }
            Self::Deflate => Box::pin(ReaderStream::with_capacity(ZlibDecoder::new(reader), CHUNK)),
            Self::Brotli => Box::pin(ReaderStream::with_capacity(
                BrotliDecoder::new(reader),
                CHUNK,
            )),
            Self::Zstd => Box::pin(ReaderStream::with_capacity(ZstdDecoder::new(reader), CHUNK)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::CONTENT_ENCODING, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn encodings_are_read_from_the_header() {
        assert_eq!(Encoding::of(&with(&[])), Ok(Encoding::Identity));
        assert_eq!(Encoding::of(&with(&["identity"])), Ok(Encoding::Identity));
        assert_eq!(Encoding::of(&with(&["GZIP"])), Ok(Encoding::Gzip));
        assert_eq!(Encoding::of(&with(&["x-gzip"])), Ok(Encoding::Gzip));
        assert_eq!(Encoding::of(&with(&["deflate"])), Ok(Encoding::Deflate));
        assert_eq!(Encoding::of(&with(&["br"])), Ok(Encoding::Brotli));
        assert_eq!(Encoding::of(&with(&["zstd"])), Ok(Encoding::Zstd));
        assert!(Encoding::of(&with(&["compress"])).is_err());
        assert!(Encoding::of(&with(&["gzip, br"])).is_err());
        assert!(Encoding::of(&with(&["gzip", "gzip"])).is_err());
    }

    #[tokio::test]
    async fn gzip_bodies_are_decoded_and_counted_as_received() {
        use async_compression::tokio::write::GzipEncoder;
        use tokio::io::AsyncWriteExt;
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let mut enc = GzipEncoder::new(Vec::new());
        enc.write_all(&plain).await.unwrap();
        enc.shutdown().await.unwrap();
        let gz = enc.into_inner();
        let pieces: Vec<Result<Bytes, io::Error>> = gz
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let received = Arc::new(AtomicU64::new(0));
        let out: Vec<Bytes> = Encoding::Gzip
            .decode(futures_util::stream::iter(pieces), received.clone())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), plain);
        assert_eq!(received.load(Ordering::Relaxed), gz.len() as u64);
    }
}
