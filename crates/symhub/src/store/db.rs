//! The symbol store's metadata database: one SQL text, two engines. The embedded default is
//! SQLite in the data directory; a scale-out deployment points every instance at one
//! PostgreSQL, so keys, packages and upload sessions are shared and transactional.
//!
//! Statements are written once, in the common subset of both dialects (`?N` placeholders,
//! `ON CONFLICT`, `RETURNING`), and rewritten to `$N` for PostgreSQL. Values cross the
//! boundary as [`P`] (parameters) and [`Row`]s of [`Value`], so store code never sees which
//! engine answers. Calls block: async callers go through `spawn_blocking`.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

mod pg;
use super::readers::Readers;
pub use pg::PgConn;
use pg::{pg_value, tls_connector};

/// A failed database call. Names the engine, so an operator knows which service to check.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("store database (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store database (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    #[error("store database (PostgreSQL) unreachable: {0}")]
    Unreachable(String),
    #[error("store bucket: {0}")]
    Bucket(String),
}

impl DbError {
    /// The database or bucket could not be reached: the caller should retry later.
    /// A statement failed because its pooled connection had been lost (not because the
    /// server refused a new one): worth one retry, which reconnects.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, DbError::Postgres(e) if e.is_closed())
    }

    /// A unique index refused a row another transaction committed meanwhile (PostgreSQL's
    /// `unique_violation`; SQLite serializes writers, so its transactions never meet this).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Postgres(e)
            if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION))
    }

    pub fn is_unreachable(&self) -> bool {
        match self {
            DbError::Unreachable(_) | DbError::Bucket(_) => true,
            DbError::Postgres(e) => e.is_closed(),
            DbError::Sqlite(_) => false,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum P<'a> {
    Int(i64),
    Text(&'a str),
    OptInt(Option<i64>),
    OptText(Option<&'a str>),
}

impl From<i64> for P<'_> {
    fn from(v: i64) -> Self {
        P::Int(v)
    }
}
impl From<u64> for P<'_> {
    fn from(v: u64) -> Self {
        P::Int(v as i64)
    }
}
impl From<bool> for P<'_> {
    fn from(v: bool) -> Self {
        P::Int(v as i64)
    }
}
impl<'a> From<&'a str> for P<'a> {
    fn from(v: &'a str) -> Self {
        P::Text(v)
    }
}
impl<'a> From<&'a String> for P<'a> {
    fn from(v: &'a String) -> Self {
        P::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for P<'a> {
    fn from(v: Option<&'a str>) -> Self {
        P::OptText(v)
    }
}
impl From<Option<i64>> for P<'_> {
    fn from(v: Option<i64>) -> Self {
        P::OptInt(v)
    }
}

/// `p![a, b]`: a parameter slice.
macro_rules! p {
    ($($x:expr),* $(,)?) => { &[$($crate::store::db::P::from($x)),*][..] };
}
pub(crate) use p;

impl rusqlite::ToSql for P<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V, ValueRef};
        Ok(match *self {
            P::Int(i) | P::OptInt(Some(i)) => ToSqlOutput::Owned(V::Integer(i)),
            P::Text(s) | P::OptText(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            P::OptInt(None) | P::OptText(None) => ToSqlOutput::Owned(V::Null),
        })
    }
}

impl postgres::types::ToSql for P<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            P::Int(i) => i.to_sql(ty, out),
            P::Text(s) => s.to_sql(ty, out),
            P::OptInt(o) => o.to_sql(ty, out),
            P::OptText(o) => o.to_sql(ty, out),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        <i64 as postgres::types::ToSql>::accepts(ty)
            || <&str as postgres::types::ToSql>::accepts(ty)
    }

    // Checked per variant, so an integer is never written into a text column or back.
    fn to_sql_checked(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            P::Int(i) => i.to_sql_checked(ty, out),
            P::Text(s) => s.to_sql_checked(ty, out),
            P::OptInt(o) => o.to_sql_checked(ty, out),
            P::OptText(o) => o.to_sql_checked(ty, out),
        }
    }
}

/// A column value of a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }

    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.0.get(i) {
            Some(Value::Text(v)) => Some(v.clone()),
            _ => None,
        }
    }
}

/// A connection of either engine. Statements are cached per connection.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConn>),
}

fn sqlite_row(row: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Row> {
    use rusqlite::types::ValueRef;
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Int(v),
            ValueRef::Real(v) => Value::Int(v as i64),
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                Value::Text(String::from_utf8_lossy(t).into_owned())
            }
        });
    }
    Ok(Row(values))
}

fn sqlite_query(
    c: &rusqlite::Connection,
    sql: &'static str,
    params: &[P<'_>],
) -> DbResult<Vec<Row>> {
    let mut stmt = c.prepare_cached(sql)?;
    let n = stmt.column_count();
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| sqlite_row(r, n))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Conn {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }

    pub fn query(&mut self, sql: &'static str, params: &[P<'_>]) -> DbResult<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => sqlite_query(c, sql, params),
            Conn::Postgres(pg) => {
                let stmt = pg.statement(sql)?;
                let args: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p as _).collect();
                let r = pg.client()?.query(&stmt, &args);
                let rows = pg.check(r)?;
                rows.iter()
                    .map(|r| (0..r.len()).map(|i| pg_value(r, i)).collect())
                    .map(|v: Result<Vec<_>, _>| v.map(Row).map_err(DbError::from))
                    .collect()
            }
        }
    }

    pub fn query_opt(&mut self, sql: &'static str, params: &[P<'_>]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    pub fn execute(&mut self, sql: &'static str, params: &[P<'_>]) -> DbResult<u64> {
        match self {
            Conn::Sqlite(c) => {
                Ok(c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))? as u64)
            }
            Conn::Postgres(pg) => {
                let stmt = pg.statement(sql)?;
                let args: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p as _).collect();
                let r = pg.client()?.execute(&stmt, &args);
                pg.check(r)
            }
        }
    }

    fn batch(&mut self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(pg) => {
                let r = pg.client()?.batch_execute(sql);
                pg.check(r)
            }
        }
    }

    /// Serializes, across every instance sharing the database, the transactions that touch
    /// one blob: garbage collection deciding a blob is unused and deleting it, against a
    /// writer claiming it. A no-op on SQLite, where one process owns the database and the
    /// in-process claims do this job.
    pub fn lock_blob(&mut self, sha256: &str) -> DbResult<()> {
        if self.is_postgres() {
            self.query(
                "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
                p![sha256],
            )?;
        }
        Ok(())
    }
}

/// The store's database: a few connections (one for SQLite, whose writers serialize anyway).
pub struct Db {
    conns: Vec<Mutex<Conn>>,
    next: AtomicUsize,
    postgres: bool,
    /// SQLite's readers beside its one writer ([`Db::read_query`]); PostgreSQL reads on
    /// its pool.
    readers: Option<Readers>,
}

/// Where the metadata lives.
#[derive(Debug, Clone)]
pub enum DbTarget {
    Sqlite(std::path::PathBuf),
    Postgres {
        url: String,
        /// PEM file of the CAs that may sign the server's certificate (else public roots).
        ca_file: Option<std::path::PathBuf>,
    },
}

const PG_CONNECTIONS: usize = 4;

impl Db {
    pub fn open(target: &DbTarget, sqlite_schema: &str, pg_schema: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut readers = None;
        let conns = match target {
            DbTarget::Sqlite(path) => {
                let writer = super::open_db(path, "store", "FULL", sqlite_schema)?;
                readers = Some(Readers::open(path, "store")?);
                vec![Conn::Sqlite(writer)]
            }
            DbTarget::Postgres { url, ca_file } => {
                let mut config: postgres::Config = url.parse().context(
                    "storage.database is not a valid PostgreSQL URL \
                     (postgres://user:password@host:port/dbname)",
                )?;
                if config.get_connect_timeout().is_none() {
                    config.connect_timeout(Duration::from_secs(3));
                }
                // The schema's `IF NOT EXISTS` makes the server say "already exists,
                // skipping" on every start: news only for whoever debugs the database.
                config.notice_callback(|n| {
                    tracing::debug!(severity = n.severity(), "database notice: {}", n.message())
                });
                // The driver's default is `prefer`, which here would mean a verified TLS
                // connection to any server that offers TLS (Debian's, with its self-signed
                // certificate, does): TLS is used only when the URL asks for it.
                if !url.contains("sslmode") {
                    config.ssl_mode(postgres::config::SslMode::Disable);
                }
                let tls = tls_connector(ca_file.as_deref())?;
                let mut conns = Vec::new();
                for _ in 0..PG_CONNECTIONS {
                    conns.push(Conn::Postgres(Box::new(PgConn {
                        config: config.clone(),
                        tls: tls.clone(),
                        client: None,
                        statements: HashMap::new(),
                    })));
                }
                // Several instances may start at once: the schema is applied under a lock.
                conns[0]
                    .batch(&format!(
                        "SELECT pg_advisory_lock(7368790); {pg_schema}; SELECT pg_advisory_unlock(7368790);"
                    ))
                    .with_context(|| {
                        format!(
                            "cannot initialise the store database at {} (storage.database): \
                             is PostgreSQL running and does the database exist?",
                            redact(url)
                        )
                    })?;
                conns
            }
        };
        Ok(Self {
            postgres: matches!(target, DbTarget::Postgres { .. }),
            conns: conns.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            readers,
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// A free connection if there is one, else the next in turn.
    pub fn conn(&self) -> MutexGuard<'_, Conn> {
        super::readers::free_or_next(&self.conns, &self.next)
    }

    /// Runs `f` on a connection, once more if it failed because that connection had been
    /// lost (after a PostgreSQL restart every pooled connection is stale, and each would
    /// otherwise fail its first statement: a client would see a 503 although the database
    /// is back). The retry runs on a fresh connection; the server that lost the first one
    /// never ran its statement.
    fn on_conn<T>(&self, mut f: impl FnMut(&mut Conn) -> DbResult<T>) -> DbResult<T> {
        let mut c = self.conn();
        match f(&mut c) {
            Err(e) if e.is_stale_connection() => f(&mut c),
            r => r,
        }
    }

    pub fn query(&self, sql: &'static str, params: &[P<'_>]) -> DbResult<Vec<Row>> {
        self.on_conn(|c| c.query(sql, params))
    }

    pub fn query_opt(&self, sql: &'static str, params: &[P<'_>]) -> DbResult<Option<Row>> {
        self.on_conn(|c| c.query_opt(sql, params))
    }

    /// A read that must not queue behind writes: on SQLite it runs on a reader and sees
    /// the last committed state (see [`Readers`]); on PostgreSQL it is [`Db::query`].
    /// Statements that write fail on a reader.
    pub fn read_query(&self, sql: &'static str, params: &[P<'_>]) -> DbResult<Vec<Row>> {
        match &self.readers {
            Some(r) => sqlite_query(&r.get(), sql, params),
            None => self.query(sql, params),
        }
    }

    /// [`Db::read_query`]'s first row.
    pub fn read_query_opt(&self, sql: &'static str, params: &[P<'_>]) -> DbResult<Option<Row>> {
        Ok(self.read_query(sql, params)?.into_iter().next())
    }

    pub fn execute(&self, sql: &'static str, params: &[P<'_>]) -> DbResult<u64> {
        self.on_conn(|c| c.execute(sql, params))
    }

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    pub fn tx<R>(&self, f: impl FnOnce(&mut Conn) -> DbResult<R>) -> DbResult<R> {
        let mut c = self.conn();
        let begin = if c.is_postgres() {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        // A stale connection fails at BEGIN, before anything of the transaction ran.
        if let Err(e) = c.batch(begin) {
            if !e.is_stale_connection() {
                return Err(e);
            }
            c.batch(begin)?;
        }
        match f(&mut c) {
            Ok(r) => {
                c.batch("COMMIT")?;
                Ok(r)
            }
            Err(e) => {
                let _ = c.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// A database URL (or `key=value` connection string) without its password, for messages.
pub fn redact(url: &str) -> String {
    if !url.contains("://") {
        return url
            .split_whitespace()
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    // The credentials run from `://` to the first `@`, as the driver reads them (a raw `?`
    // may be part of the password); the query starts after them.
    let (base, rest) = match url.find("://") {
        Some(s) => match url[s + 3..].find('@').map(|at| s + 3 + at) {
            Some(at) if url[s + 3..at].contains(':') => {
                let user = url[s + 3..at].split(':').next().unwrap_or_default();
                (format!("{}://{user}:***@", &url[..s]), &url[at + 1..])
            }
            Some(at) => (url[..at + 1].to_owned(), &url[at + 1..]),
            None => (format!("{}://", &url[..s]), &url[s + 3..]),
        },
        None => (String::new(), url),
    };
    let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
    let base = format!("{base}{host}");
    if query.is_empty() {
        return base;
    }
    let query = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***",
            _ => kv,
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{base}?{query}")
}

#[cfg(test)]
mod tests {
    use super::pg::dollar_placeholders;
    use super::*;

    #[test]
    fn placeholders_and_redaction() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE a = ?1 AND b < ?12"),
            "SELECT a FROM t WHERE a = $1 AND b < $12"
        );
        assert_eq!(
            redact("postgres://symhub:s3cret@db:5432/symhub"),
            "postgres://symhub:***@db:5432/symhub"
        );
        assert_eq!(
            redact("postgres://symhub@db/symhub?sslmode=require&password=s3cret"),
            "postgres://symhub@db/symhub?sslmode=require&password=***"
        );
        assert_eq!(
            redact("postgres://u:pa?ss@db/x?sslmode=require"),
            "postgres://u:***@db/x?sslmode=require"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact("host=/tmp dbname=x"), "host=/tmp dbname=x");
        assert_eq!(
            redact("host=db user=s password=s3cret dbname=x"),
            "host=db user=s password=*** dbname=x"
        );
    }
}
