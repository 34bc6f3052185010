//! API key rows.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::keys::{NewKey, Scope};

#[derive(Debug, sqlx::FromRow)]
pub struct StoredKey {
    pub id: Uuid,
    pub name: String,
    pub salt: Vec<u8>,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(pool: &PgPool, key: &NewKey, name: &str, scopes: &[Scope]) -> Result<(), sqlx::Error> {
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query("INSERT INTO api_keys (id, name, salt, secret_hash, scopes) VALUES ($1, $2, $3, $4, $5)")
        .bind(key.id)
        .bind(name)
        .bind(&key.salt)
        .bind(&key.secret_hash)
        .bind(scopes)
        .execute(pool)
        .await?;
    Ok(())
}

/// The key with this id, if it exists and is not revoked.
pub async fn find_active(pool: &PgPool, id: Uuid) -> Result<Option<StoredKey>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM api_keys WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list(pool: &PgPool) -> Result<Vec<StoredKey>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM api_keys ORDER BY created_at")
        .fetch_all(pool)
        .await
}

/// Returns whether a key was revoked now.
pub async fn revoke(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}
