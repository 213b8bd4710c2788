//! The missing-symbol ledger's table: every key that ended in a 404, with when it was first
//! and last asked, how often, what the upstreams answered and which kinds of client asked.
//! Shared by every instance on a shared database; written in batches ([`crate::missing`]),
//! kept to a bound by dropping the keys asked least recently.

use super::db::{p, DbResult, Row};
use super::symbols::SymbolStore;

/// One key's misses since the last write.
#[derive(Debug, Clone)]
pub struct Missed {
    /// Normalized.
    pub key: String,
    pub display: String,
    /// Unix ms.
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
    pub answers: String,
    pub clients: i64,
}

/// How `GET /api/missing` orders the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingOrder {
    /// Most requested first.
    Count,
    /// Most recently requested first.
    Recent,
}

impl SymbolStore {
    /// Adds a batch of misses, in one transaction, then drops the keys asked least recently
    /// beyond `max_keys`. The number of keys dropped.
    pub fn record_missing(&self, batch: &[Missed], max_keys: u64) -> DbResult<u64> {
        self.db.tx(|c| {
            for m in batch {
                c.execute(
                    "INSERT INTO missing_symbols
                         (key, display, first_seen, last_seen, count, answers, clients)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (key) DO UPDATE SET
                         last_seen = CASE WHEN excluded.last_seen > missing_symbols.last_seen
                                     THEN excluded.last_seen ELSE missing_symbols.last_seen END,
                         count = missing_symbols.count + excluded.count,
                         answers = excluded.answers,
                         clients = missing_symbols.clients | excluded.clients",
                    p![
                        m.key.as_str(),
                        m.display.as_str(),
                        m.first_seen,
                        m.last_seen,
                        m.count,
                        m.answers.as_str(),
                        m.clients
                    ],
                )?;
                // Stored meanwhile (an upload or a package deletes its keys' rows, and a
                // miss counted just before it would bring one back): not missing.
                c.execute(
                    "DELETE FROM missing_symbols WHERE key = ?1
                         AND (EXISTS (SELECT 1 FROM symbols WHERE key = ?1)
                              OR EXISTS (SELECT 1 FROM package_keys pk
                                         JOIN packages p ON p.seq = pk.seq
                                         WHERE pk.key = ?1 AND p.state = 'active'))",
                    p![m.key.as_str()],
                )?;
            }
            let total = c
                .query_opt("SELECT COUNT(*) FROM missing_symbols", p![])?
                .map_or(0, |r| r.int(0));
            let over = total - max_keys as i64;
            if over <= 0 {
                return Ok(0);
            }
            c.execute(
                "DELETE FROM missing_symbols WHERE key IN
                     (SELECT key FROM missing_symbols ORDER BY last_seen, key LIMIT ?1)",
                p![over],
            )
        })
    }

    /// A page of the ledger, and how many keys it holds.
    pub fn missing_page(
        &self,
        order: MissingOrder,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<Missed>, i64)> {
        let rows = match order {
            MissingOrder::Count => self.db.query(
                "SELECT key, display, first_seen, last_seen, count, answers, clients
                 FROM missing_symbols ORDER BY count DESC, last_seen DESC, key
                 LIMIT ?1 OFFSET ?2",
                p![limit, offset],
            )?,
            MissingOrder::Recent => self.db.query(
                "SELECT key, display, first_seen, last_seen, count, answers, clients
                 FROM missing_symbols ORDER BY last_seen DESC, key LIMIT ?1 OFFSET ?2",
                p![limit, offset],
            )?,
        };
        let total = self
            .db
            .query_opt("SELECT COUNT(*) FROM missing_symbols", p![])?
            .map_or(0, |r| r.int(0));
        Ok((rows.iter().map(missed).collect(), total))
    }

    /// Removes `key` (normalized) from the ledger; whether it was there.
    pub fn forget_missing(&self, key: &str) -> DbResult<bool> {
        Ok(self
            .db
            .execute("DELETE FROM missing_symbols WHERE key = ?1", p![key])?
            > 0)
    }
}

fn missed(r: &Row) -> Missed {
    Missed {
        key: r.text(0),
        display: r.text(1),
        first_seen: r.int(2),
        last_seen: r.int(3),
        count: r.int(4),
        answers: r.text(5),
        clients: r.int(6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missed(i: usize, at: i64) -> Missed {
        let key = format!("m{i}.pdb/0123456789abcdef0123456789abcdef1/m{i}.pdb");
        Missed {
            display: key.clone(),
            key,
            first_seen: at,
            last_seen: at,
            count: 1,
            answers: "not found upstream".into(),
            clients: 1,
        }
    }

    /// 100,000 distinct missing keys into a ledger bounded at 10,000: it holds the 10,000
    /// asked last, and counts add up for a key asked again.
    #[test]
    fn a_hundred_thousand_distinct_misses_stay_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = SymbolStore::open(dir.path()).unwrap();
        for batch in 0..10 {
            let misses: Vec<_> = (batch * 10_000..(batch + 1) * 10_000)
                .map(|i| missed(i, i as i64))
                .collect();
            store.record_missing(&misses, 10_000).unwrap();
        }
        let (page, total) = store.missing_page(MissingOrder::Recent, 1, 0).unwrap();
        assert_eq!(total, 10_000);
        assert_eq!(page[0].key, missed(99_999, 0).key);
        let (oldest, _) = store.missing_page(MissingOrder::Recent, 1, 9_999).unwrap();
        assert_eq!(oldest[0].key, missed(90_000, 0).key);
        let again = Missed {
            count: 4,
            clients: 16,
            ..missed(95_000, 200_000)
        };
        store.record_missing(&[again], 10_000).unwrap();
        let (top, _) = store.missing_page(MissingOrder::Count, 1, 0).unwrap();
        assert_eq!((top[0].count, top[0].clients), (5, 1 | 16));
        assert_eq!(top[0].first_seen, 95_000);
        assert!(store.forget_missing(&top[0].key).unwrap());
        assert!(!store.forget_missing(&top[0].key).unwrap());
    }
}
