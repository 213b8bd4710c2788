//! The PostgreSQL side of the store's database: one connection (reconnected when lost, its
//! statements prepared once), TLS as the URL asks, and the translation of the store's SQL and
//! values ([`super::Conn`] is either engine).

use std::collections::HashMap;
use std::sync::Arc;

use super::{DbError, DbResult, Value};

/// TLS for PostgreSQL connections whose URL has `sslmode=require` (or `prefer`): the
/// server's certificate is always verified, against `ca_file` when given (a private CA, as
/// RDS and most company databases use), else the public web roots.
pub(super) fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use anyhow::Context;
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let what = || {
                format!(
                    "storage.database_ca_file {}: expected PEM certificates",
                    path.display()
                )
            };
            for cert in CertificateDer::pem_file_iter(path).with_context(what)? {
                roots.add(cert.with_context(what)?).with_context(what)?;
            }
            anyhow::ensure!(!roots.is_empty(), "{} holds no certificate", what());
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS setup for storage.database")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

pub struct PgConn {
    pub(super) config: postgres::Config,
    pub(super) tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub(super) client: Option<postgres::Client>,
    pub(super) statements: HashMap<&'static str, postgres::Statement>,
}

impl PgConn {
    pub(super) fn client(&mut self) -> DbResult<&mut postgres::Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.statements.clear();
            let client = self
                .config
                .connect(self.tls.clone())
                // The cause (the server's refusal, a certificate problem) is in the sources.
                .map_err(|e| DbError::Unreachable(format!("{:#}", anyhow::Error::new(e))))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    pub(super) fn statement(&mut self, sql: &'static str) -> DbResult<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let translated = dollar_placeholders(sql);
        let s = self.client()?.prepare(&translated)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    /// A failed call may have been a lost connection: the next call reconnects.
    pub(super) fn check<T>(&mut self, r: Result<T, postgres::Error>) -> DbResult<T> {
        if r.is_err() && self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        Ok(r?)
    }
}

impl Drop for PgConn {
    /// `postgres::Client` closes its connection by blocking on a runtime of its own, which
    /// panics on a thread that runs tokio (the server drops its last reference to the store
    /// at shutdown, on its main runtime: exit 134 on every SIGTERM of a shared-store
    /// instance). There it is closed on a thread of its own; if none can be started, the
    /// process is ending and the connection is left to the kernel.
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let client = std::mem::ManuallyDrop::new(client);
        let _ = std::thread::Builder::new()
            .name("symhub-pg-close".into())
            .spawn(move || drop(std::mem::ManuallyDrop::into_inner(client)));
    }
}

/// `?1` → `$1`. Store SQL has no `?` inside string literals.
pub(super) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn pg_value(row: &postgres::Row, i: usize) -> Result<Value, postgres::Error> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        // `void` (a function called for its effect) and anything the store never selects.
        _ => Value::Null,
    })
}
