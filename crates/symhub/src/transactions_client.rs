//! `symhub transactions` and `symhub delete`: list upload transactions and delete them, on
//! a data directory or through a server ([`crate::target`]). Both print what the API
//! answers, so the two modes read the same; the rules are in `symhub::store::transactions`.

use std::time::Instant;

use anyhow::bail;
use reqwest::Method;
use serde_json::Value;

use crate::target::{call, Opened, Target};

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only transactions of this product.
    #[arg(long)]
    product: Option<String>,
    /// Only transactions of this version.
    #[arg(long)]
    version: Option<String>,
    /// Print JSON (an array of transactions) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["transaction", "product"])))]
pub struct DeleteArgs {
    /// The transaction to delete (its id, from `symhub transactions`).
    #[arg(long, conflicts_with = "product")]
    transaction: Option<i64>,
    /// Delete every live transaction of this product…
    #[arg(long)]
    product: Option<String>,
    /// …and this version only.
    #[arg(long, requires = "product")]
    version: Option<String>,
    #[command(flatten)]
    target: Target,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    // A bucket store sends its requests through this runtime.
    let _runtime = runtime.enter();
    let list = match args.target.open()? {
        Opened::Local { store, .. } => serde_json::to_value(
            store.list_transactions(args.product.as_deref(), args.version.as_deref())?,
        )?,
        Opened::Remote(r) => {
            let mut query = Vec::new();
            query.extend(args.product.as_ref().map(|p| ("product", p)));
            query.extend(args.version.as_ref().map(|v| ("version", v)));
            let req = r.request(Method::GET, "/api/transactions").query(&query);
            runtime.block_on(call(req))?["transactions"].take()
        }
    };
    if args.json {
        say!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    print_table(list.as_array().map(Vec::as_slice).unwrap_or_default());
    Ok(())
}

/// One line per transaction; the comment last, on one line, shortened.
fn print_table(list: &[Value]) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    say!(
        "{:>6}  {:<7}  {:<20}  {:<20}  {:<12}  {:>7}  {:>12}  {:<22}  comment",
        "id",
        "state",
        "created",
        "product",
        "version",
        "keys",
        "bytes",
        "uploader"
    );
    for t in list {
        let mut comment: String = text(&t["comment"])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if comment.chars().count() > 60 {
            comment = comment.chars().take(59).chain(['…']).collect();
        }
        say!(
            "{:>6}  {:<7}  {:<20}  {:<20}  {:<12}  {:>7}  {:>12}  {:<22}  {comment}",
            // A `Value`'s Display ignores widths: numbers go through strings.
            t["id"].to_string(),
            text(&t["state"]),
            text(&t["created_at"]),
            text(&t["product"]),
            text(&t["version"]),
            t["key_count"].to_string(),
            t["bytes"].to_string(),
            text(&t["uploader"]),
        );
    }
    let live = list.iter().filter(|t| t["state"] == "active").count();
    say!("{} transactions, {live} live", list.len());
}

pub fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let _runtime = runtime.enter();
    let started = Instant::now();
    let reports = match args.target.open()? {
        Opened::Local { store, .. } => {
            serde_json::to_value(match (args.transaction, &args.product) {
                (Some(id), _) => vec![store.delete_transaction(id)?],
                (None, Some(product)) => {
                    store.delete_transactions_of(product, args.version.as_deref())?
                }
                (None, None) => bail!("give --transaction ID or --product NAME"),
            })?
        }
        Opened::Remote(r) => {
            let req = match (args.transaction, &args.product) {
                (Some(id), _) => r.request(Method::DELETE, &format!("/api/transactions/{id}")),
                (None, Some(product)) => {
                    let mut query = vec![("product", product)];
                    query.extend(args.version.as_ref().map(|v| ("version", v)));
                    r.request(Method::DELETE, "/api/transactions").query(&query)
                }
                (None, None) => bail!("give --transaction ID or --product NAME"),
            };
            runtime.block_on(call(req))?["deleted"].take()
        }
    };
    let reports = reports.as_array().map(Vec::as_slice).unwrap_or_default();
    let sum = |field: &str| {
        reports
            .iter()
            .filter_map(|r| r[field].as_u64())
            .sum::<u64>()
    };
    for r in reports {
        say!(
            "transaction {}: {} keys removed, {} kept, {} blobs removed",
            r["id"],
            r["keys_removed"],
            r["keys_kept"],
            r["blobs_removed"]
        );
    }
    say!(
        "deleted {} transactions: {} keys removed, {} kept (replaced since, or still used by \
         another transaction or a package), {} blobs removed, in {:.1}s",
        reports.len(),
        sum("keys_removed"),
        sum("keys_kept"),
        sum("blobs_removed"),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
