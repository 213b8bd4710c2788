//! The configuration tree: what `symhub.toml` may say, its defaults, and its validation.
//!
//! Every section is a serde struct with `deny_unknown_fields`, so a typo is an error that names
//! the file and the key instead of a silently ignored setting. Defaults live in `Default`
//! impls, so the embedded default (no file at all) is simply `Config::default()`, and the
//! checked-in `symhub.example.toml` is parsed by a test to keep it honest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;
use symhub_core::Spelling;

mod storage;

/// A setting where 0 means "`per_core` for each core of this machine".
pub fn or_per_core(setting: usize, per_core: usize) -> usize {
    match setting {
        0 => per_core * std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

mod symbolication;
mod validate;

pub use storage::{S3Config, StorageConfig};
pub use symbolication::{MissingConfig, RetentionConfig, SymbolicationConfig};
pub use validate::{parse_key_hash, ListenAddr, TrustedProxy};

/// Microsoft's public symbol server: the one upstream of the embedded default.
pub const MICROSOFT_SYMBOLS: &str = "https://msdl.microsoft.com/download/symbols";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub cache: CacheConfig,
    pub health: HealthConfig,
    pub auth: AuthConfig,
    pub upload: UploadConfig,
    pub packages: PackageConfig,
    pub symbolication: SymbolicationConfig,
    pub missing: MissingConfig,
    pub retention: RetentionConfig,
    /// Upstream symbol servers, asked in this order of priority.
    #[serde(rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            cache: CacheConfig::default(),
            health: HealthConfig::default(),
            auth: AuthConfig::default(),
            upload: UploadConfig::default(),
            packages: PackageConfig::default(),
            symbolication: SymbolicationConfig::default(),
            missing: MissingConfig::default(),
            retention: RetentionConfig::default(),
            upstreams: vec![UpstreamConfig::new("microsoft", MICROSOFT_SYMBOLS)],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port` or `unix:/path/to.sock`; several may be given.
    pub listen: Vec<String>,
    /// Permissions of a UNIX socket file, as an octal string (`"0660"`).
    pub unix_socket_mode: String,
    /// Serve symbol paths under this prefix (`/symbols`) instead of the root.
    pub path_prefix: String,
    /// Peers whose `X-Forwarded-For` is believed: IP addresses or CIDR networks, and `unix`
    /// for anything connecting over a UNIX socket (nginx in front).
    pub trusted_proxies: Vec<String>,
    /// How long in-flight responses may run after SIGTERM/SIGINT before the process exits.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A client must send its request headers within this time (slowloris guard).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request running is closed after this long (before its
    /// first request, after `header_read_timeout`).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest silence while receiving a request body (an upload); the upload is cut after it.
    #[serde(with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Threads connections are served on, each with its own single-threaded runtime; 0: one
    /// per core.
    pub workers: usize,
    /// Most request headers in one request; more → 431.
    pub max_headers: usize,
    /// Largest request head (request line and headers); larger → 431.
    pub max_header_bytes: ByteSize,
    /// `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:8080".into()],
            unix_socket_mode: "0660".into(),
            path_prefix: String::new(),
            trusted_proxies: vec!["127.0.0.1".into(), "::1".into(), "unix".into()],
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            workers: 0,
            max_headers: crate::http::HYPER_MAX_HEADERS,
            max_header_bytes: ByteSize::kib(64),
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Upper bound of the proxy cache on disk; least recently used files go first.
    pub max_size: ByteSize,
    /// How long "no upstream has this file" is remembered.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// When `foo.pdb` is asked for and upstreams only have `foo.pd_`, unpack the CAB and
    /// serve the plain file.
    pub decompress_cab: bool,
    /// Largest file symhub will unpack from a CAB.
    pub max_unpacked_size: ByteSize,
    /// Accept `text/html` bodies as symbols. Off: an HTML page answered with 200 (a login or
    /// error page) is treated as "not found" instead of being cached as a PDB.
    pub accept_html: bool,
    /// Glob patterns over the lowercased key (`*.exe/*/*`); matching requests answer 404
    /// without any upstream traffic.
    pub blocklist: Vec<String>,
    /// Memory for what the cache knows of hot keys (entries, remembered misses, code-id
    /// redirects), estimated per key from its strings plus the map's own bookkeeping; the
    /// least recently used go first (they are still on disk and in the index).
    pub memory_size: ByteSize,
    /// Deprecated: a count of keys, read as `memory_size` = that many × 512 bytes.
    pub memory_entries: Option<u64>,
    /// Number of hot files kept open (symhub raises its descriptor limit to fit).
    pub open_files: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_size: ByteSize::gib(200),
            negative_ttl: Duration::from_secs(3600),
            decompress_cab: true,
            max_unpacked_size: ByteSize::gib(8),
            accept_html: false,
            blocklist: Vec::new(),
            memory_size: ByteSize::mib(32),
            memory_entries: None,
            open_files: 1000,
        }
    }
}

/// When an upstream is declared down and for how long (SymProxy's "blackout").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Consecutive failures (timeouts, 5xx, connection errors, truncated bodies) that mark an
    /// upstream down.
    pub failure_threshold: u32,
    /// How long a down upstream is skipped before one request probes it again.
    #[serde(with = "humantime_serde")]
    pub blackout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            blackout: Duration::from_secs(120),
        }
    }
}

/// API keys: who may upload (and, optionally, download).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// SHA-256 hashes of the accepted keys, as `"sha256:<64 hex>"`; `symhub key new` prints
    /// a new key and its line. Plaintext keys never belong in the config.
    pub api_keys: Vec<String>,
    /// Require a key for symbol downloads and listings too (default: downloads are public).
    pub require_for_downloads: bool,
    /// Require a key for `/metrics`, and for the upstream details of `/healthz` (its
    /// status stays public so load balancers can probe it).
    pub require_for_metrics: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Largest accepted upload; a larger one is refused with 413 before it fills the disk.
    pub max_size: ByteSize,
    /// sym-upload-v2 sessions that may be open at once; more are refused with 429.
    pub max_sessions: u64,
    /// How long a v2 upload session (create → PUT → complete) may take.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Route of the sym-upload-v1 multipart POST.
    pub v1_path: String,
    /// The base URL clients reach symhub at (`https://symbols.example.com`), used to build
    /// v2 upload URLs. Empty: taken from X-Forwarded-Proto/Host of trusted proxies, else Host.
    pub public_url: String,
    /// Make the Breakpad `.sym` of every PDB, ELF with DWARF and Mach-O with DWARF uploaded
    /// as a raw file (`PUT /api/files/…`, `symhub upload`), when it is uploaded.
    pub breakpad: bool,
    /// Time one `.sym` may take to make before the attempt is given up (the upload itself
    /// is kept).
    #[serde(with = "humantime_serde")]
    pub breakpad_timeout: Duration,
    /// Memory (address space) one `.sym` maker may use: dump_syms reads a file whole.
    pub breakpad_max_memory: ByteSize,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            max_size: ByteSize::gib(2),
            max_sessions: 1000,
            session_ttl: Duration::from_secs(3600),
            v1_path: "/symupload".into(),
            public_url: String::new(),
            breakpad: true,
            breakpad_timeout: Duration::from_secs(600),
            breakpad_max_memory: ByteSize::gib(8),
        }
    }
}

/// Limits for SSQP zip packages: what a hostile or broken zip cannot make symhub do.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackageConfig {
    /// Largest accepted package file.
    pub max_size: ByteSize,
    /// Most entries in one package.
    pub max_entries: usize,
    /// Most bytes one package may unpack to, summed over its entries.
    pub max_unpacked_size: ByteSize,
    /// Largest declared unpacked/packed ratio of an entry over 1 MiB (deflate reaches about
    /// 1000:1 on zeros; real symbol files stay far below 100:1).
    pub max_ratio: u64,
    /// Largest `symbol_index.json`.
    pub max_index_size: ByteSize,
}

impl Default for PackageConfig {
    fn default() -> Self {
        Self {
            max_size: ByteSize::gib(20),
            max_entries: 1_000_000,
            max_unpacked_size: ByteSize::gib(100),
            max_ratio: 200,
            max_index_size: ByteSize::mib(512),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySpelling {
    #[default]
    AsRequested,
    Lowercase,
    Symsrv,
}

impl From<KeySpelling> for Spelling {
    fn from(s: KeySpelling) -> Self {
        match s {
            KeySpelling::AsRequested => Spelling::AsRequested,
            KeySpelling::Lowercase => Spelling::Lowercase,
            KeySpelling::Symsrv => Spelling::SymSrv,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    pub url: String,
    /// Only keys whose name has one of these extensions are asked (`["dll", "exe"]`). Empty:
    /// every key. A CAB name (`foo.dl_`) matches its plain extension.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Headers sent with every request to this upstream (an auth token). They are dropped
    /// when a redirect leads to another host.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Client request headers passed on to this upstream (`SymbolChecksum` for NuGet).
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// How keys are spelled in this upstream's URLs (`symhub_core::spelling`).
    #[serde(default)]
    pub key_spelling: KeySpelling,
    /// What the upstream speaks: `symsrv` (SymSrv/SSQP/Breakpad paths, the default) or
    /// `debuginfod` (elfutils' `/buildid/<id>/…`; asked only for ELF keys, translated).
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// From sending the request to receiving the response headers.
    #[serde(default = "defaults::first_byte_timeout", with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Longest silence between two reads of a body. There is deliberately no total limit: a
    /// 4 GB PDB that keeps making progress is never cut.
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(default = "defaults::max_redirects")]
    pub max_redirects: usize,
}

mod defaults {
    use std::time::Duration;
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn first_byte_timeout() -> Duration {
        Duration::from_secs(20)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_redirects() -> usize {
        5
    }
}

/// The protocol an upstream speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `GET <base>/<key>`: SymSrv, SSQP and Breakpad servers.
    #[default]
    Symsrv,
    /// `GET <base>/buildid/<id>/debuginfo|executable|…`: elfutils' debuginfod.
    Debuginfod,
}

impl UpstreamConfig {
    /// The upstreams named by `DEBUGINFOD_URLS` (space-separated base URLs, as elfutils'
    /// clients and server read it): federation targets, after the configured upstreams.
    /// elfutils' IMA policy words (`ima:enforcing`, `ima:permissive`, `ima:ignore`, which
    /// debuginfod-client-config(7) allows between the URLs and Fedora's
    /// `/etc/debuginfod/*.urls` carry) are skipped: they tell a client how to check the
    /// signatures of the servers that follow, and symhub checks none.
    pub fn from_debuginfod_urls(urls: &str) -> Vec<Self> {
        urls.split_whitespace()
            .filter(|word| !word.to_ascii_lowercase().starts_with("ima:"))
            .enumerate()
            .map(|(i, url)| {
                let mut u = Self::new(&format!("debuginfod-{}", i + 1), url);
                u.protocol = Protocol::Debuginfod;
                u
            })
            .collect()
    }

    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            extensions: Vec::new(),
            headers: BTreeMap::new(),
            forward_headers: Vec::new(),
            key_spelling: KeySpelling::default(),
            protocol: Protocol::default(),
            connect_timeout: defaults::connect_timeout(),
            first_byte_timeout: defaults::first_byte_timeout(),
            idle_timeout: defaults::idle_timeout(),
            max_redirects: defaults::max_redirects(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.upstreams.len(), 1);
        assert_eq!(c.upstreams[0].url, MICROSOFT_SYMBOLS);
        assert_eq!(c.server.listen, ["127.0.0.1:8080"]);
        assert_eq!(c.storage.data_dir, PathBuf::from("./symhub-data"));
    }

    #[test]
    fn example_config_parses_and_lists_public_upstreams() {
        let text = include_str!("../../../../symhub.example.toml");
        let c = Config::parse(text).unwrap();
        let urls: Vec<_> = c.upstreams.iter().map(|u| u.url.as_str()).collect();
        for want in [
            MICROSOFT_SYMBOLS,
            "https://symbols.nuget.org/download/symbols",
            "https://symbols.mozilla.org",
            "https://chromium-browser-symsrv.commondatastorage.googleapis.com",
            "https://driver-symbols.nvidia.com",
        ] {
            assert!(urls.contains(&want), "example config lacks {want}");
        }
        // Every section is spelled out, with the defaults.
        let d = Config::default();
        assert_eq!(c.symbolication.max_jobs, d.symbolication.max_jobs);
        assert_eq!(c.symbolication.memory_cache, d.symbolication.memory_cache);
        assert_eq!(
            c.symbolication.request_timeout,
            d.symbolication.request_timeout
        );
        assert_eq!(c.missing.max_keys, d.missing.max_keys);
        assert_eq!(c.missing.flush_interval, d.missing.flush_interval);
        assert_eq!(c.retention.interval, d.retention.interval);
        assert_eq!(c.server.workers, d.server.workers);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = Config::parse("[cache]\nmax_sise = \"1 GiB\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("max_sise"), "{err:#}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "[[upstream]]\nname = \"a\"\nurl = \"ftp://x\"\n",
                "upstream[0]",
            ),
            ("[server]\nlisten = [\"nonsense\"]\n", "server.listen[0]"),
            ("[server]\nunix_socket_mode = \"999\"\n", "unix_socket_mode"),
            ("[server]\npath_prefix = \"symbols\"\n", "path_prefix"),
            (
                "[server]\npath_prefix = \"/metrics\"\n",
                "server.path_prefix",
            ),
            ("[upload]\nv1_path = \"/api/keys\"\n", "upload.v1_path"),
            ("[upload]\nv1_path = \"/a//b\"\n", "upload.v1_path"),
            ("[cache]\nblocklist = [\"a[\"]\n", "cache.blocklist[0]"),
            (
                "[server]\ntrusted_proxies = [\"x\"]\n",
                "trusted_proxies[0]",
            ),
            ("[server]\nworkers = 100000\n", "server.workers"),
            (
                "[server]\nheader_read_timeout = \"0s\"\n",
                "server.header_read_timeout: must be more than 0",
            ),
            (
                "[[upstream]]\nname = \"u\"\nurl = \"http://x\"\nfirst_byte_timeout = \"0s\"\n",
                "upstream[0] (`u`).first_byte_timeout",
            ),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn sizes_and_durations_are_human() {
        let c = Config::parse("[cache]\nmax_size = \"3 GiB\"\nnegative_ttl = \"15m\"\n").unwrap();
        assert_eq!(c.cache.max_size.as_u64(), 3 << 30);
        assert_eq!(c.cache.negative_ttl, Duration::from_secs(900));
    }
}
