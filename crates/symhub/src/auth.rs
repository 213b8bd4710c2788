//! API keys: who may upload, manage packages, list the store and (when configured) download.
//! Configured as SHA-256 hashes (`auth.api_keys`), or read in plaintext from
//! `--api-key-file` and hashed at start. A presented key is hashed and compared with every
//! configured hash in constant time; keys are never logged.
//!
//! A key may come as `?key=` (sym_upload v2), `Authorization: Bearer`, `Auth-Token`
//! (Tecken), or `Authorization: Basic` with any user name and the key as the password (what
//! Visual Studio, dotnet-symbol, PerfView and Git credential managers send; a key as the user
//! name with an empty password is taken too, as `curl -u KEY:` sends it). No key → 401, a wrong key → 403, no keys configured → uploads disabled (403,
//! with how to enable them). HTTP routes ask for a key by taking the
//! [`crate::http::error::RequireKey`] extractor, so no handler repeats the check.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{parse_key_hash, Config};

pub struct ApiKeys {
    hashes: Vec<[u8; 32]>,
    pub require_for_downloads: bool,
    pub require_for_metrics: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Wrong,
    Disabled,
}

impl Denied {
    pub fn message(self) -> &'static str {
        match self {
            Denied::Missing => "an API key is required: pass ?key=…, `Authorization: Bearer …`, `Auth-Token: …`, or Basic credentials with the key as the password",
            Denied::Wrong => "the API key is not valid",
            Denied::Disabled => "uploads are disabled because no API key is configured: run `symhub key new` and add the line it prints to [auth] in symhub.toml, or start with `symhub serve --api-key-file FILE`",
        }
    }
}

/// Makes a new key: 160 random bits, printable, with a recognizable prefix.
pub fn new_key() -> (String, String) {
    let bytes: [u8; 20] = rand::random();
    let key = format!("symhub_{}", hex::encode(bytes));
    let line = format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())));
    (key, line)
}

impl ApiKeys {
    /// `plaintext`: keys read from `--api-key-file`.
    pub fn new(config: &Config, plaintext: &[String]) -> anyhow::Result<Self> {
        let mut hashes = config
            .auth
            .api_keys
            .iter()
            .map(|k| parse_key_hash(k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        hashes.extend(
            plaintext
                .iter()
                .map(|k| <[u8; 32]>::from(Sha256::digest(k.as_bytes()))),
        );
        for (set, name) in [
            (config.auth.require_for_downloads, "require_for_downloads"),
            (config.auth.require_for_metrics, "require_for_metrics"),
        ] {
            if hashes.is_empty() && set {
                anyhow::bail!(
                    "auth.{name} is set but no API key is configured: \
                     add one with `symhub key new` or --api-key-file"
                );
            }
        }
        Ok(Self {
            hashes,
            require_for_downloads: config.auth.require_for_downloads,
            require_for_metrics: config.auth.require_for_metrics,
        })
    }

    pub fn check(&self, headers: &http::HeaderMap, query: Option<&str>) -> Result<(), Denied> {
        if self.hashes.is_empty() {
            return Err(Denied::Disabled);
        }
        let presented = presented_key(headers, query).ok_or(Denied::Missing)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare against every hash, without an early exit.
        let mut ok = subtle::Choice::from(0);
        for h in &self.hashes {
            ok |= h.ct_eq(&digest);
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(Denied::Wrong)
        }
    }
}

/// Names the key a request presented without revealing it: `key sha256:` and the first 12
/// hex digits of its hash, which begin its `auth.api_keys` line, so an operator can tell
/// whose it is. For records such as a transaction's uploader.
pub fn key_fingerprint(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    let key = presented_key(headers, query)?;
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    Some(format!("key sha256:{}", &hash[..12]))
}

fn presented_key(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(q) = query {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("key=") {
                let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                if !v.is_empty() {
                    return Some(v.into_owned());
                }
            }
        }
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(auth) = header("authorization") {
        if let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        {
            return Some(token.trim().to_owned());
        }
    }
    if let Some(key) = header("authorization").and_then(basic_key) {
        return Some(key);
    }
    header("auth-token")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The key in `Basic base64(user:password)` (RFC 7617): the password, or the user name when
/// the password is empty.
fn basic_key(authorization: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, encoded) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    let key = if password.is_empty() { user } else { password };
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_query_bearer_or_auth_token() {
        let (key, line) = new_key();
        let mut config = Config::default();
        config.auth.api_keys = vec![line.clone()];
        let keys = ApiKeys::new(&config, &["plain-key".into()]).unwrap();
        let none = http::HeaderMap::new();
        assert_eq!(keys.check(&none, Some(&format!("a=1&key={key}"))), Ok(()));
        assert_eq!(keys.check(&none, Some("key=plain-key")), Ok(()));
        assert_eq!(keys.check(&none, None), Err(Denied::Missing));
        assert_eq!(keys.check(&none, Some("key=nope")), Err(Denied::Wrong));
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {key}").parse().unwrap());
        assert_eq!(keys.check(&h, None), Ok(()));
        let mut h = http::HeaderMap::new();
        h.insert("auth-token", key.parse().unwrap());
        assert_eq!(keys.check(&h, None), Ok(()));
        let fingerprint = key_fingerprint(&h, None).unwrap();
        assert!(
            line.starts_with(&fingerprint["key ".len()..]),
            "{fingerprint}"
        );
        assert!(!fingerprint.contains(&key));
        use base64::Engine;
        let basic = |creds: &str| {
            let mut h = http::HeaderMap::new();
            let b64 = base64::engine::general_purpose::STANDARD.encode(creds);
            h.insert("authorization", format!("Basic {b64}").parse().unwrap());
            keys.check(&h, None)
        };
        assert_eq!(basic(&format!("anyone:{key}")), Ok(()));
        assert_eq!(basic(&format!(":{key}")), Ok(()));
        assert_eq!(basic(&format!("{key}:")), Ok(()));
        assert_eq!(basic("anyone:nope"), Err(Denied::Wrong));
        assert_eq!(basic(":"), Err(Denied::Missing));
        let off = ApiKeys::new(&Config::default(), &[]).unwrap();
        assert_eq!(off.check(&h, None), Err(Denied::Disabled));
    }
}
