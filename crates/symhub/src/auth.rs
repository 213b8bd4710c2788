//! API keys: who may download (when downloads need a key), upload, and administer.
//!
//! Two kinds of key. **Configured** keys: SHA-256 hashes in `auth.api_keys`, or plaintext
//! from `--api-key-file` hashed at start; they have every scope and are named by their
//! fingerprint (`key sha256:1a2b3c4d5e6f`). **Named** keys (`symhub key new --name N --scope
//! S [--expires 90d]`, or `POST /api/keys`): kept as SHA-256 in the store's database
//! ([`crate::store::keys`]), so every instance of a shared store knows them, each with a
//! scope, an optional expiry and a revocation. Scopes are ordered: `download` < `upload` <
//! `admin`; a key may do what its scope and the ones below allow.
//!
//! A presented key is hashed and the digest is compared with every configured hash in
//! constant time, then looked up among named keys by digest (what a lookup's timing could
//! reveal is about a SHA-256 of a 160-bit secret, not the secret). Named keys' rows are
//! remembered for [`REMEMBER`] and forgotten on any store change (another instance's
//! revocation reaches this one with the store's change poll, within a second). Keys are
//! never logged.
//!
//! A key may come as `?key=` (sym_upload v2), `Authorization: Bearer`, `Auth-Token`
//! (Tecken), or `Authorization: Basic` with any user name and the key as the password (what
//! Visual Studio, dotnet-symbol, PerfView and Git credential managers send; a key as the user
//! name with an empty password is taken too, as `curl -u KEY:` sends it). No key → 401, a
//! wrong, revoked or expired key → 403 (401 when expired, so a client asks for a new one),
//! too small a scope → 403 naming the scope needed, no key anywhere → uploads disabled (403,
//! with how to enable them). HTTP routes ask for a key by taking the
//! [`crate::http::error::RequireKey`] extractor, so no handler repeats the check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{parse_key_hash, Config};
use crate::store::keys::NamedKey;
use crate::store::{unix_millis, SymbolStore};

/// How long a named key's row (or its absence) is trusted without asking the database.
pub const REMEMBER: Duration = Duration::from_secs(30);

/// Named keys' lookups remembered at most (a flood of wrong keys cannot grow memory).
const REMEMBER_MAX: usize = 10_000;

/// What a key may do. Ordered: each scope allows what the ones below it allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Symbol downloads (with `auth.require_for_downloads`), listings, the ledger.
    Download,
    /// Uploads, packages, transactions; forgetting a miss.
    Upload,
    /// Deletions and key management.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Download => "download",
            Scope::Upload => "upload",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "download" | "read" => Some(Scope::Download),
            "upload" | "write" => Some(Scope::Upload),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// Who sent a request: the key's name (a configured key's fingerprint) and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: Arc<str>,
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Wrong,
    Disabled,
    Revoked(String),
    Expired(String),
    Scope {
        name: String,
        have: Scope,
        need: Scope,
    },
    /// The shared database could not be asked about the key.
    Unavailable(String),
    /// A change asked by another site's page (`http::origin::cross_site`).
    CrossSite,
}

impl Denied {
    pub fn message(&self) -> String {
        match self {
            Denied::Missing => "an API key is required: pass ?key=…, `Authorization: Bearer …`, `Auth-Token: …`, or Basic credentials with the key as the password".into(),
            Denied::Wrong => "the API key is not valid".into(),
            Denied::Disabled => "uploads are disabled because no API key is configured: run `symhub key new --name NAME --scope admin` on the data dir, or `symhub key new` and add the line it prints to [auth] in symhub.toml, or start with `symhub serve --api-key-file FILE`".into(),
            Denied::Revoked(name) => format!("the API key `{name}` was revoked"),
            Denied::Expired(name) => format!("the API key `{name}` has expired: ask an admin for a new one"),
            Denied::Scope { name, have, need } => format!(
                "the API key `{name}` has the `{}` scope; this needs `{}`",
                have.as_str(),
                need.as_str()
            ),
            Denied::Unavailable(e) => format!("cannot check the API key: {e}"),
            Denied::CrossSite => "a page of another site may not change symhub (a browser would send its saved credentials with it); use the console on this server, or a client that is not a browser".into(),
        }
    }
}

/// Makes a new key: 160 random bits, printable, with a recognizable prefix. Returns the key
/// and its `sha256:<hex>` line.
pub fn new_key() -> (String, String) {
    let bytes: [u8; 20] = rand::random();
    let key = format!("symhub_{}", hex::encode(bytes));
    let line = format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())));
    (key, line)
}

/// Makes a named key and records it in `store`: returns the key, shown once.
/// `expires_in`: from now. Blocking.
pub fn create_named_key(
    store: &SymbolStore,
    name: &str,
    scope: Scope,
    expires_in: Option<Duration>,
) -> Result<(String, NamedKey), crate::store::keys::KeyError> {
    let (key, line) = new_key();
    let named = NamedKey {
        name: name.to_owned(),
        scope: scope.as_str().to_owned(),
        created_at: unix_millis(SystemTime::now()),
        expires_at: crate::store::retention::expires_at(expires_in),
        revoked_at: None,
    };
    store.create_key(&named, &line["sha256:".len()..])?;
    Ok((key, named))
}

/// Whether a named key can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

/// The state of a named key at `now` (unix ms).
pub fn key_state(k: &NamedKey, now: i64) -> KeyState {
    if k.revoked_at.is_some() {
        KeyState::Revoked
    } else if k.expires_at.is_some_and(|e| e <= now) {
        KeyState::Expired
    } else {
        KeyState::Active
    }
}

type Remembered = (Instant, Option<NamedKey>);

pub struct ApiKeys {
    hashes: Vec<[u8; 32]>,
    store: Option<Arc<SymbolStore>>,
    remembered: Mutex<HashMap<[u8; 32], Remembered>>,
    /// Whether the store has a usable named key, and when that was read.
    usable: Mutex<Option<(Instant, bool)>>,
    pub require_for_downloads: bool,
    pub require_for_metrics: bool,
}

impl ApiKeys {
    /// `plaintext`: keys read from `--api-key-file`. Named keys are found in `store`.
    pub fn new(
        config: &Config,
        plaintext: &[String],
        store: Option<Arc<SymbolStore>>,
    ) -> anyhow::Result<Self> {
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
        Ok(Self {
            hashes,
            store,
            remembered: Mutex::default(),
            usable: Mutex::default(),
            require_for_downloads: config.auth.require_for_downloads,
            require_for_metrics: config.auth.require_for_metrics,
        })
    }

    /// Refuses a configuration that demands keys when there is none at all.
    /// `named_keys`: whether the store has a usable named key. Blocking callers only.
    pub fn ensure_some_key(&self, named_keys: bool) -> anyhow::Result<()> {
        for (set, name) in [
            (self.require_for_downloads, "require_for_downloads"),
            (self.require_for_metrics, "require_for_metrics"),
        ] {
            if set && self.hashes.is_empty() && !named_keys {
                anyhow::bail!(
                    "auth.{name} is set but no API key exists: add one with \
                     `symhub key new --name NAME --scope download` (or `symhub key new` for a \
                     line in [auth]) or --api-key-file"
                );
            }
        }
        Ok(())
    }

    /// The configured keys' names (fingerprints), for listings.
    pub fn configured_names(&self) -> Vec<String> {
        self.hashes.iter().map(fingerprint).collect()
    }

    /// Drops every remembered named-key lookup (the store changed).
    pub fn forget(&self) {
        self.remembered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.usable.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The caller behind the key a request presents, if it may do what `need` allows.
    pub async fn check(
        &self,
        headers: &http::HeaderMap,
        query: Option<&str>,
        need: Scope,
    ) -> Result<Caller, Denied> {
        // "Uploads are disabled" is no answer to a download: it needs a key, full stop.
        let disabled_or = |otherwise: Denied| async move {
            Ok(if need > Scope::Download && self.disabled().await? {
                Denied::Disabled
            } else {
                otherwise
            })
        };
        let Some(presented) = presented_key(headers, query) else {
            return Err(disabled_or(Denied::Missing).await?);
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        drop(presented);
        // Compare against every hash, without an early exit.
        let mut ok = subtle::Choice::from(0);
        for h in &self.hashes {
            ok |= h.ct_eq(&digest);
        }
        if bool::from(ok) {
            return Ok(Caller {
                name: fingerprint(&digest).into(),
                scope: Scope::Admin,
            });
        }
        let Some(named) = self.named(digest).await? else {
            return Err(disabled_or(Denied::Wrong).await?);
        };
        let now = unix_millis(SystemTime::now());
        match key_state(&named, now) {
            KeyState::Revoked => return Err(Denied::Revoked(named.name)),
            KeyState::Expired => return Err(Denied::Expired(named.name)),
            KeyState::Active => {}
        }
        // An unknown scope (written by a newer symhub) allows nothing more than download.
        let have = Scope::parse(&named.scope).unwrap_or(Scope::Download);
        if have < need {
            return Err(Denied::Scope {
                name: named.name,
                have,
                need,
            });
        }
        Ok(Caller {
            name: named.name.into(),
            scope: have,
        })
    }

    async fn named(&self, digest: [u8; 32]) -> Result<Option<NamedKey>, Denied> {
        let Some(store) = self.store.clone() else {
            return Ok(None);
        };
        {
            let remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, k)) = remembered.get(&digest) {
                if at.elapsed() < REMEMBER {
                    return Ok(k.clone());
                }
            }
        }
        let hash = hex::encode(digest);
        let found = tokio::task::spawn_blocking(move || store.key_by_hash(&hash))
            .await
            .map_err(|e| Denied::Unavailable(e.to_string()))?
            .map_err(|e| Denied::Unavailable(e.to_string()))?;
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if remembered.len() >= REMEMBER_MAX {
            remembered.clear();
        }
        remembered.insert(digest, (Instant::now(), found.clone()));
        Ok(found)
    }

    /// No configured key and no usable named key: uploads are off, not refused.
    async fn disabled(&self) -> Result<bool, Denied> {
        if !self.hashes.is_empty() {
            return Ok(false);
        }
        let Some(store) = self.store.clone() else {
            return Ok(true);
        };
        if let Some((at, usable)) = *self.usable.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < REMEMBER {
                return Ok(!usable);
            }
        }
        let now = unix_millis(SystemTime::now());
        let usable = tokio::task::spawn_blocking(move || store.has_usable_keys(now))
            .await
            .map_err(|e| Denied::Unavailable(e.to_string()))?
            .map_err(|e| Denied::Unavailable(e.to_string()))?;
        *self.usable.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), usable));
        Ok(!usable)
    }
}

/// `key sha256:` and the first 12 hex digits of a configured key's hash, which begin its
/// `auth.api_keys` line, so an operator can tell whose it is without the key.
fn fingerprint(digest: &[u8; 32]) -> String {
    format!("key sha256:{}", &hex::encode(digest)[..12])
}

fn presented_key(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(q) = query {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("key=") {
                let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                if !v.trim().is_empty() {
                    return Some(v.trim().to_owned());
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
    // The scheme is case-insensitive (RFC 9110 §11.1).
    if let Some((scheme, token)) = header("authorization").and_then(|a| a.split_once(' ')) {
        if scheme.eq_ignore_ascii_case("bearer") {
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

    fn caller(r: Result<Caller, Denied>) -> Result<Scope, Denied> {
        r.map(|c| c.scope)
    }

    #[tokio::test]
    async fn keys_from_query_bearer_auth_token_or_basic() {
        let (key, line) = new_key();
        let mut config = Config::default();
        config.auth.api_keys = vec![line.clone()];
        let keys = ApiKeys::new(&config, &["plain-key".into()], None).unwrap();
        let check = |h: http::HeaderMap, q: Option<String>| {
            let keys = &keys;
            async move { caller(keys.check(&h, q.as_deref(), Scope::Admin).await) }
        };
        let none = http::HeaderMap::new;
        assert_eq!(
            check(none(), Some(format!("a=1&key={key}"))).await,
            Ok(Scope::Admin)
        );
        assert_eq!(
            check(none(), Some("key=plain-key".into())).await,
            Ok(Scope::Admin)
        );
        assert_eq!(check(none(), None).await, Err(Denied::Missing));
        assert_eq!(
            check(none(), Some("key=nope".into())).await,
            Err(Denied::Wrong)
        );
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {key}").parse().unwrap());
        assert_eq!(check(h, None).await, Ok(Scope::Admin));
        let mut h = http::HeaderMap::new();
        h.insert("auth-token", key.parse().unwrap());
        let named = keys.check(&h, None, Scope::Admin).await.unwrap().name;
        assert!(line.starts_with(&named["key ".len()..]), "{named}");
        assert!(!named.contains(&key));
        use base64::Engine;
        let basic = |creds: String| {
            let mut h = http::HeaderMap::new();
            let b64 = base64::engine::general_purpose::STANDARD.encode(creds);
            h.insert("authorization", format!("Basic {b64}").parse().unwrap());
            h
        };
        assert_eq!(
            check(basic(format!("anyone:{key}")), None).await,
            Ok(Scope::Admin)
        );
        assert_eq!(
            check(basic(format!(":{key}")), None).await,
            Ok(Scope::Admin)
        );
        assert_eq!(
            check(basic(format!("{key}:")), None).await,
            Ok(Scope::Admin)
        );
        assert_eq!(
            check(basic("anyone:nope".into()), None).await,
            Err(Denied::Wrong)
        );
        assert_eq!(check(basic(":".into()), None).await, Err(Denied::Missing));
        let off = ApiKeys::new(&Config::default(), &[], None).unwrap();
        assert_eq!(
            caller(off.check(&h, None, Scope::Upload).await),
            Err(Denied::Disabled)
        );
        // A download is not "uploads disabled": it needs a (valid) key.
        assert_eq!(
            caller(off.check(&h, None, Scope::Download).await),
            Err(Denied::Wrong)
        );
        assert_eq!(
            caller(
                off.check(&http::HeaderMap::new(), None, Scope::Download)
                    .await
            ),
            Err(Denied::Missing)
        );
    }

    #[tokio::test]
    async fn named_keys_have_a_scope_an_expiry_and_a_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SymbolStore::open(dir.path()).unwrap());
        let keys = ApiKeys::new(&Config::default(), &[], Some(store.clone())).unwrap();
        let bearer = |k: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("authorization", format!("Bearer {k}").parse().unwrap());
            h
        };
        // No key anywhere: disabled, then a named key turns keys on.
        assert_eq!(
            caller(keys.check(&bearer("x"), None, Scope::Upload).await),
            Err(Denied::Disabled)
        );
        let (up, _) = create_named_key(&store, "ci", Scope::Upload, None).unwrap();
        keys.forget();
        let c = keys.check(&bearer(&up), None, Scope::Upload).await.unwrap();
        assert_eq!((&*c.name, c.scope), ("ci", Scope::Upload));
        assert_eq!(
            caller(keys.check(&bearer(&up), None, Scope::Download).await),
            Ok(Scope::Upload)
        );
        assert!(matches!(
            keys.check(&bearer(&up), None, Scope::Admin).await,
            Err(Denied::Scope {
                need: Scope::Admin,
                have: Scope::Upload,
                ..
            })
        ));
        assert_eq!(
            caller(keys.check(&bearer("x"), None, Scope::Download).await),
            Err(Denied::Wrong)
        );
        assert!(matches!(
            create_named_key(&store, "ci", Scope::Admin, None),
            Err(crate::store::keys::KeyError::Exists(_))
        ));
        // Revoked: refused once this instance forgets what it remembered.
        store
            .revoke_key("ci", unix_millis(SystemTime::now()))
            .unwrap();
        keys.forget();
        assert_eq!(
            caller(keys.check(&bearer(&up), None, Scope::Download).await),
            Err(Denied::Revoked("ci".into()))
        );
        let (short, _) = create_named_key(
            &store,
            "short",
            Scope::Download,
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        assert!(keys
            .check(&bearer(&short), None, Scope::Download)
            .await
            .is_ok());
        // Expiry is checked on each use, remembered row or not.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            caller(keys.check(&bearer(&short), None, Scope::Download).await),
            Err(Denied::Expired("short".into()))
        );
        keys.forget();
        assert_eq!(
            caller(keys.check(&bearer("x"), None, Scope::Upload).await),
            Err(Denied::Disabled),
            "no usable key left"
        );
    }
}
