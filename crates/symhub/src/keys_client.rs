//! `symhub key …`: API keys. `key new` alone prints a key and its `[auth]` line (a
//! configured, full-scope key); with `--name` it makes a named key in the store (on a data
//! dir or shared store directly, or through a server's `/api/keys` with an admin key), and
//! `key list` / `key revoke NAME` manage them. The key itself is printed once, never stored.

use std::time::SystemTime;

use anyhow::bail;
use reqwest::Method;
use serde_json::{json, Value};
use symhub::auth::Scope;

use crate::target::{call, Opened, Target};

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Make a key. Without --name: print it and the `[auth]` line that lets symhub accept it
    /// (full scope). With --name: record a named key in the store, with a scope and an
    /// optional expiry.
    New(NewArgs),
    /// List named keys (and, through a server, the configured ones).
    List(ListArgs),
    /// Revoke a named key: it is refused from then on; its name is not reused.
    Revoke(RevokeArgs),
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The key's name, kept with what it uploads (letters, digits, `-`, `_`, `.`, `@`).
    #[arg(long)]
    name: Option<String>,
    /// download, upload or admin (each allows what the ones before it allow).
    #[arg(long, default_value = "upload", requires = "name")]
    scope: String,
    /// Expire after this long (`90d`, `12h`); default: never.
    #[arg(long, value_name = "DURATION", requires = "name")]
    expires: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct RevokeArgs {
    name: String,
    #[command(flatten)]
    target: Target,
}

pub fn run(command: KeyCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    // A bucket store sends its requests through this runtime.
    let _entered = runtime.enter();
    match command {
        KeyCommand::New(args) => new(args, &runtime),
        KeyCommand::List(args) => list(args, &runtime),
        KeyCommand::Revoke(args) => revoke(args, &runtime),
    }
}

fn new(args: NewArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let Some(name) = args.name else {
        let (key, line) = symhub::auth::new_key();
        say!("API key (give it to the uploader; it is not stored anywhere):\n  {key}\n");
        say!("Add to symhub.toml so symhub accepts it:\n  [auth]\n  api_keys = [\"{line}\"]");
        return Ok(());
    };
    let Some(scope) = Scope::parse(&args.scope) else {
        bail!("--scope is download, upload or admin, not {:?}", args.scope);
    };
    let made = match args.target.open()? {
        Opened::Local { store, .. } => {
            let expires = symhub::store::retention::parse_expiry(args.expires.as_deref())
                .map_err(anyhow::Error::msg)?;
            let (key, named) = symhub::auth::create_named_key(&store, &name, scope, expires)?;
            let mut v = symhub::http::keys::key_json(&named, now());
            v["key"] = json!(key);
            v
        }
        Opened::Remote(r) => {
            let req = r
                .request(Method::POST, "/api/keys")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(
                    json!({ "name": name, "scope": scope.as_str(), "expires": args.expires })
                        .to_string(),
                );
            runtime.block_on(call(req))?
        }
    };
    let text = |k: &str| made[k].as_str().unwrap_or("never").to_owned();
    say!(
        "API key `{}` ({} scope, expires: {}); give it to its user, it is not shown again:\n  {}",
        text("name"),
        text("scope"),
        text("expires_at"),
        text("key")
    );
    Ok(())
}

fn list(args: ListArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let keys = match args.target.open()? {
        Opened::Local { store, .. } => {
            let now = now();
            Value::Array(
                store
                    .list_keys()?
                    .iter()
                    .map(|k| symhub::http::keys::key_json(k, now))
                    .collect(),
            )
        }
        Opened::Remote(r) => {
            runtime.block_on(call(r.request(Method::GET, "/api/keys")))?["keys"].take()
        }
    };
    if args.json {
        say!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    say!(
        "{:<24}  {:<8}  {:<7}  {:<20}  {:<20}  source",
        "name",
        "scope",
        "state",
        "created",
        "expires"
    );
    let list = keys.as_array().map(Vec::as_slice).unwrap_or_default();
    for k in list {
        say!(
            "{:<24}  {:<8}  {:<7}  {:<20}  {:<20}  {}",
            text(&k["name"]),
            text(&k["scope"]),
            text(&k["state"]),
            text(&k["created_at"]),
            text(&k["expires_at"]),
            text(&k["source"]),
        );
    }
    let active = list.iter().filter(|k| k["state"] == "active").count();
    say!("{} keys, {active} active", list.len());
    Ok(())
}

fn revoke(args: RevokeArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match args.target.open()? {
        Opened::Local { store, .. } => {
            store.revoke_key(&args.name, now())?;
        }
        Opened::Remote(r) => {
            let path = format!("/api/keys/{}", args.name);
            runtime.block_on(call(r.request(Method::DELETE, &path)))?;
        }
    }
    say!("API key `{}` revoked", args.name);
    Ok(())
}

fn now() -> i64 {
    symhub::store::unix_millis(SystemTime::now())
}
