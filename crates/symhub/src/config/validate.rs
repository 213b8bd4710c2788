//! What a parsed config means and whether it holds together: listen addresses, trusted
//! proxies, key hashes, and the checks `Config::parse` runs before anything starts.

use std::path::Path;

use anyhow::{bail, Context};

use super::*;

/// Parses an `auth.api_keys` entry: `sha256:<64 hex>`.
pub fn parse_key_hash(entry: &str) -> anyhow::Result<[u8; 32]> {
    let hex_part = entry.strip_prefix("sha256:").with_context(|| {
        "expected `sha256:<64 hex>` (run `symhub key new` to make a key and its line)"
    })?;
    let bytes = hex::decode(hex_part).context("the hash is not hexadecimal")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the hash must be 32 bytes (64 hex digits)"))
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for ListenAddr {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                bail!("`unix:` needs a socket path, as in `unix:/run/symhub.sock`");
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        use std::net::ToSocketAddrs;
        let addr = s
            .to_socket_addrs()
            .with_context(|| format!("`{s}` is neither host:port nor unix:/path"))?
            .next()
            .with_context(|| format!("`{s}` resolves to no address"))?;
        Ok(ListenAddr::Tcp(addr))
    }
}

/// A trusted proxy entry: a network or "any UNIX socket peer".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedProxy {
    Net(ipnet::IpNet),
    Unix,
}

impl Config {
    /// Reads and validates a config file. Errors name the file and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: names, URLs, listen addresses, patterns.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.server.listen.is_empty() {
            bail!("server.listen: at least one address is needed");
        }
        for (i, l) in self.server.listen.iter().enumerate() {
            l.parse::<ListenAddr>()
                .with_context(|| format!("server.listen[{i}]"))?;
        }
        self.unix_socket_mode()?;
        if self.storage.bucket()?.is_some() && self.storage.database.is_empty() {
            bail!(
                "storage.database: a store in a bucket ({}) needs a shared PostgreSQL database \
                 (postgres://user:password@host/dbname, or --database) so that every instance \
                 sees the same keys, packages and upload sessions",
                self.storage.store
            );
        }
        if !self.storage.database.is_empty() && self.storage.bucket()?.is_none() {
            bail!(
                "storage.database is set but storage.store is not a bucket: a shared database \
                 only makes sense with a shared store (s3://bucket/prefix)"
            );
        }
        if self.server.max_connections == 0 {
            bail!("server.max_connections: must be at least 1");
        }
        if self.server.workers > MAX_WORKERS {
            bail!("server.workers: at most {MAX_WORKERS} (0 is one per core)");
        }
        self.waits()?;
        if self.retention.interval < std::time::Duration::from_millis(100) {
            bail!("retention.interval: must be at least 100ms (as in \"5m\")");
        }
        if self.server.max_header_bytes.as_u64() < 8192 {
            bail!("server.max_header_bytes: must be at least 8 KiB");
        }
        self.trusted_proxies()?;
        let prefix = &self.server.path_prefix;
        if !prefix.is_empty() && (!prefix.starts_with('/') || prefix.ends_with('/')) {
            bail!("server.path_prefix: `{prefix}` must start with `/` and not end with one, as in `/symbols`");
        }
        if !prefix.is_empty() {
            route_path(prefix).context("server.path_prefix")?;
        }
        if let Some(route) = crate::http::prefix_taken(prefix) {
            bail!(
                "server.path_prefix: `{prefix}` is or falls under symhub's own route `{route}`; \
                 choose a prefix of its own, as `/symbols`"
            );
        }
        for (i, k) in self.auth.api_keys.iter().enumerate() {
            parse_key_hash(k).with_context(|| format!("auth.api_keys[{i}]"))?;
        }
        let v1 = &self.upload.v1_path;
        if !v1.starts_with('/') || v1.len() < 2 || v1.ends_with('/') {
            bail!("upload.v1_path: `{v1}` must be a path like `/symupload`");
        }
        route_path(v1).context("upload.v1_path")?;
        if let Some(route) = crate::http::v1_path_taken(prefix, v1) {
            bail!(
                "upload.v1_path: `{v1}` is or falls under symhub's own route `{route}`; \
                 choose a path of its own, as `/symupload` (the default)"
            );
        }
        if !self.upload.public_url.is_empty() {
            let u = reqwest::Url::parse(&self.upload.public_url).with_context(|| {
                format!(
                    "upload.public_url: `{}` is not a URL",
                    self.upload.public_url
                )
            })?;
            if !matches!(u.scheme(), "http" | "https") {
                bail!("upload.public_url: must be http or https");
            }
        }
        for (i, pattern) in self.cache.blocklist.iter().enumerate() {
            globset::Glob::new(&pattern.to_lowercase())
                .with_context(|| format!("cache.blocklist[{i}]: `{pattern}` is not a glob"))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let at = format!("upstream[{i}] (`{}`)", u.name);
            for (name, wait) in [
                ("connect_timeout", u.connect_timeout),
                ("first_byte_timeout", u.first_byte_timeout),
                ("idle_timeout", u.idle_timeout),
            ] {
                if wait.is_zero() {
                    bail!("{at}.{name}: must be more than 0 (as in \"20s\"): 0 fails every request to it");
                }
            }
            if u.name.is_empty()
                || !u
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                bail!("{at}.name: use letters, digits, `-`, `_` or `.`");
            }
            if !names.insert(u.name.as_str()) {
                bail!("{at}.name: two upstreams are called `{}`", u.name);
            }
            let url = reqwest::Url::parse(&u.url)
                .with_context(|| format!("{at}.url: `{}` is not a URL", u.url))?;
            if !matches!(url.scheme(), "http" | "https") {
                bail!("{at}.url: `{}` must be http or https", u.url);
            }
            // Keys are appended to the URL's path: a query would end up before them and
            // every request would miss.
            if url.query().is_some() || url.fragment().is_some() {
                bail!(
                    "{at}.url: `{}` has a query or fragment; symhub appends each key to the \
                     URL's path, so send a token as a header instead ({at}.headers, in a \
                     config file)",
                    url.host_str().unwrap_or_default()
                );
            }
            for (name, value) in &u.headers {
                http::HeaderName::try_from(name.as_str())
                    .with_context(|| format!("{at}.headers: `{name}` is not a header name"))?;
                http::HeaderValue::try_from(value.as_str())
                    .with_context(|| format!("{at}.headers.{name}: not a valid header value"))?;
            }
            for name in &u.forward_headers {
                http::HeaderName::try_from(name.as_str()).with_context(|| {
                    format!("{at}.forward_headers: `{name}` is not a header name")
                })?;
            }
        }
        Ok(())
    }

    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.server
            .listen
            .iter()
            .map(|l| l.parse().expect("validated"))
            .collect()
    }

    pub fn unix_socket_mode(&self) -> anyhow::Result<u32> {
        let m = &self.server.unix_socket_mode;
        u32::from_str_radix(m.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .with_context(|| {
                format!("server.unix_socket_mode: `{m}` is not an octal mode like \"0660\"")
            })
    }

    /// Timeouts and lifetimes that 0 would make useless: every connection, upload,
    /// conversion or request ended at once (`header_read_timeout = "0s"` reset every
    /// connection without a word in the log).
    fn waits(&self) -> anyhow::Result<()> {
        let s3 = &self.storage.s3;
        let waits = [
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.idle_timeout", self.server.idle_timeout),
            ("server.body_idle_timeout", self.server.body_idle_timeout),
            ("upload.session_ttl", self.upload.session_ttl),
            ("upload.breakpad_timeout", self.upload.breakpad_timeout),
            (
                "symbolication.convert_timeout",
                self.symbolication.convert_timeout,
            ),
            (
                "symbolication.request_timeout",
                self.symbolication.request_timeout,
            ),
            ("storage.s3.connect_timeout", s3.connect_timeout),
            ("storage.s3.timeout", s3.timeout),
            ("storage.s3.write_timeout", s3.write_timeout),
            ("storage.s3.redirect_ttl", s3.redirect_ttl),
        ];
        for (name, wait) in waits {
            if wait.is_zero() {
                bail!("{name}: must be more than 0 (as in \"30s\"): 0 would end every one at once");
            }
        }
        Ok(())
    }

    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<TrustedProxy>> {
        self.server
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p == "unix" {
                    return Ok(TrustedProxy::Unix);
                }
                let net = p
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!("server.trusted_proxies[{i}]: `{p}` is not an IP, a CIDR or `unix`")
                    })?;
                Ok(TrustedProxy::Net(net))
            })
            .collect()
    }
}

/// Checks a path symhub mounts a route at, from `/`: segments of the characters a URL path
/// holds as they are, none empty, `.` or `..` (a client would never send it as written),
/// and no `{` or `}`, which axum would read as a parameter.
fn route_path(path: &str) -> anyhow::Result<()> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c);
    for segment in path.split('/').skip(1) {
        if segment.is_empty() || segment == "." || segment == ".." {
            bail!("`{path}` has an empty, `.` or `..` segment; write it as in `/symbols`");
        }
        if let Some(c) = segment.chars().find(|c| !plain(*c)) {
            bail!("`{path}` holds {c:?}, which a URL path cannot hold as it is; use letters, digits, `-`, `_` or `.`");
        }
    }
    Ok(())
}

/// Most connection worker threads (`server.workers`): far beyond any machine's cores, low
/// enough that a typo cannot start a million threads.
const MAX_WORKERS: usize = 1024;
