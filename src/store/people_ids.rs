//! External ids → internal ids for users and influencers, created on first sight.
//!
//! Resolution runs in its own short autocommit statements, before the batch transaction:
//! inside it, every batch naming a new user would wait on every other batch that named
//! the same user until that one committed. Ids never change, so they are cached.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgPool;

/// Which people table an external id lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum People {
    Users,
    Influencers,
}

impl People {
    fn table(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Influencers => "influencers",
        }
    }
}

/// One bounded cache per table, keyed by external id so a lookup borrows the batch's `&str`.
/// quick_cache, not moka: its reads take no global lock or access log, and at about two
/// lookups per ingested event moka's bookkeeping was a quarter of the service's CPU in the
/// ingest benchmark (see BENCHMARKS.md).
pub struct PeopleIds {
    users: quick_cache::sync::Cache<String, i64>,
    influencers: quick_cache::sync::Cache<String, i64>,
}

impl PeopleIds {
    pub fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            users: quick_cache::sync::Cache::new(capacity),
            influencers: quick_cache::sync::Cache::new(capacity),
        }
    }

    /// Drops a cached id (the person was erased: a new row gets a new id).
    pub fn forget(&self, people: People, external_id: &str) {
        self.cache(people).remove(external_id);
    }

    /// Whether the id is cached: the person exists and was resolved by this process.
    pub fn is_cached(&self, people: People, external_id: &str) -> bool {
        self.cache(people).get(external_id).is_some()
    }

    fn cache(&self, people: People) -> &quick_cache::sync::Cache<String, i64> {
        match people {
            People::Users => &self.users,
            People::Influencers => &self.influencers,
        }
    }

    /// Internal ids of the given external ids, creating the missing rows.
    pub async fn resolve<'a>(
        &self,
        pool: &PgPool,
        people: People,
        external_ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, i64>, sqlx::Error> {
        let cache = self.cache(people);
        let mut ids = HashMap::new();
        let mut unknown = BTreeSet::new();
        for external in external_ids {
            if ids.contains_key(external) {
                continue;
            }
            match cache.get(external) {
                Some(id) => {
                    ids.insert(external.to_string(), id);
                }
                None => {
                    unknown.insert(external);
                }
            }
        }
        if !unknown.is_empty() {
            let unknown: Vec<&str> = unknown.into_iter().collect();
            for (external, id) in fetch_or_create(pool, people, &unknown).await? {
                cache.insert(external.clone(), id);
                ids.insert(external, id);
            }
        }
        Ok(ids)
    }
}

/// Sorted input, so concurrent callers take row locks in the same order.
async fn fetch_or_create(
    pool: &PgPool,
    people: People,
    external_ids: &[&str],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let table = people.table();
    // Insert only the missing ids: ON CONFLICT alone would burn an identity value per row.
    let sql = format!(
        "WITH input AS (SELECT x FROM unnest($1::text[]) AS t(x)),
              inserted AS (INSERT INTO {table} (external_id)
                           SELECT x FROM input WHERE NOT EXISTS (SELECT 1 FROM {table} p WHERE p.external_id = input.x)
                           ON CONFLICT (external_id) DO NOTHING RETURNING id, external_id)
         SELECT external_id, id FROM inserted
         UNION ALL
         SELECT p.external_id, p.id FROM {table} p JOIN input ON p.external_id = input.x"
    );
    let mut rows: Vec<(String, i64)> = sqlx::query_as(&sql).bind(external_ids).fetch_all(pool).await?;
    // Rows a concurrent caller created after this statement's snapshot are read again.
    let found: BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let unresolved: Vec<&str> = external_ids.iter().copied().filter(|x| !found.contains(x)).collect();
    if !unresolved.is_empty() {
        let sql = format!("SELECT external_id, id FROM {table} WHERE external_id = ANY($1)");
        let more: Vec<(String, i64)> = sqlx::query_as(&sql).bind(unresolved).fetch_all(pool).await?;
        rows.extend(more);
    }
    Ok(rows)
}
