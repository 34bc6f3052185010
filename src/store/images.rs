//! The generated-image store: metadata in `images` (so retention and analysts work in SQL),
//! bytes behind [`BlobStore`] — Postgres `image_blobs` or one file per image — keyed by the
//! SHA-256 of the bytes, so storing the same image twice is a no-op.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::{PgConnection, PgPool};

use crate::ingest::event::ImageId;

#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    #[error("image of {size} bytes exceeds the store's limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("image file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
}

/// Where image bytes live.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// `postgres` or `filesystem` (the `images.backend` column).
    fn backend(&self) -> &'static str;
    /// Stores the bytes inside the transaction that records the image (files are written
    /// before it commits; a crash in between leaves an unreferenced file, never a row
    /// without bytes).
    async fn put(&self, tx: &mut PgConnection, id: &ImageId, bytes: &[u8]) -> Result<(), ImageStoreError>;
    async fn get(&self, pool: &PgPool, id: &ImageId) -> Result<Option<Bytes>, ImageStoreError>;
    /// Called after the `images` rows are gone.
    async fn remove(&self, ids: &[String]) -> Result<(), ImageStoreError>;
}

pub struct PostgresBlobs;

#[async_trait]
impl BlobStore for PostgresBlobs {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn put(&self, tx: &mut PgConnection, id: &ImageId, bytes: &[u8]) -> Result<(), ImageStoreError> {
        sqlx::query("INSERT INTO image_blobs (image_id, data) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id.as_str())
            .bind(bytes)
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn get(&self, pool: &PgPool, id: &ImageId) -> Result<Option<Bytes>, ImageStoreError> {
        let data: Option<Vec<u8>> = sqlx::query_scalar("SELECT data FROM image_blobs WHERE image_id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
        Ok(data.map(Bytes::from))
    }

    async fn remove(&self, _ids: &[String]) -> Result<(), ImageStoreError> {
        // image_blobs rows go with their images rows (ON DELETE CASCADE).
        Ok(())
    }
}

/// One file per image under `root/ab/abcdef…`.
pub struct FileBlobs {
    root: PathBuf,
}

impl FileBlobs {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.root.join(&id[..2]).join(id)
    }
}

fn file_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ImageStoreError + '_ {
    move |source| ImageStoreError::File {
        path: path.to_path_buf(),
        source,
    }
}

#[async_trait]
impl BlobStore for FileBlobs {
    fn backend(&self) -> &'static str {
        "filesystem"
    }

    async fn put(&self, _tx: &mut PgConnection, id: &ImageId, bytes: &[u8]) -> Result<(), ImageStoreError> {
        let path = self.path(id.as_str());
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir).await.map_err(file_error(&dir))?;
        // Write then rename, so a reader never sees half a file.
        let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&partial, bytes).await.map_err(file_error(&partial))?;
        tokio::fs::rename(&partial, &path).await.map_err(file_error(&path))?;
        Ok(())
    }

    async fn get(&self, _pool: &PgPool, id: &ImageId) -> Result<Option<Bytes>, ImageStoreError> {
        let path = self.path(id.as_str());
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(file_error(&path)(err)),
        }
    }

    async fn remove(&self, ids: &[String]) -> Result<(), ImageStoreError> {
        for id in ids.iter().filter(|id| id.len() > 2) {
            let path = self.path(id);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(file_error(&path)(err)),
            }
        }
        Ok(())
    }
}

/// A stored image as served.
pub struct StoredImage {
    pub bytes: Bytes,
    pub content_type: String,
}

/// Dimensions and type of an image to store.
pub struct NewImage<'a> {
    pub user_id: i64,
    pub bytes: &'a [u8],
    pub content_type: &'a str,
    pub width: u32,
    pub height: u32,
}

pub struct ImageStore {
    pool: PgPool,
    blobs: Box<dyn BlobStore>,
    max_bytes: usize,
}

impl ImageStore {
    pub fn new(pool: PgPool, blobs: Box<dyn BlobStore>, max_bytes: usize) -> Self {
        Self { pool, blobs, max_bytes }
    }

    pub fn backend(&self) -> &'static str {
        self.blobs.backend()
    }

    /// Stores the image (idempotently) and returns its id.
    pub async fn put(&self, image: &NewImage<'_>) -> Result<ImageId, ImageStoreError> {
        if image.bytes.len() > self.max_bytes {
            return Err(ImageStoreError::TooLarge {
                size: image.bytes.len(),
                limit: self.max_bytes,
            });
        }
        let id = ImageId::of(image.bytes);
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO images (id, user_id, content_type, size_bytes, width, height, backend)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(image.user_id)
        .bind(image.content_type)
        .bind(image.bytes.len() as i32)
        .bind(image.width as i32)
        .bind(image.height as i32)
        .bind(self.blobs.backend())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted > 0 {
            self.blobs.put(&mut tx, &id, image.bytes).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn get(&self, id: &ImageId) -> Result<Option<StoredImage>, ImageStoreError> {
        let content_type: Option<String> = sqlx::query_scalar("SELECT content_type FROM images WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(content_type) = content_type else {
            return Ok(None);
        };
        Ok(self
            .blobs
            .get(&self.pool, id)
            .await?
            .map(|bytes| StoredImage { bytes, content_type }))
    }

    /// Every image made from this user's photo.
    pub async fn delete_for_user(&self, user_id: i64) -> Result<usize, ImageStoreError> {
        let ids: Vec<String> = sqlx::query_scalar("DELETE FROM images WHERE user_id = $1 RETURNING id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        self.blobs.remove(&ids).await?;
        Ok(ids.len())
    }

    /// Drops the bytes of images whose rows are already deleted (erasure deletes the rows in
    /// its own transaction; the postgres backend's bytes went with them by cascade).
    pub async fn remove_blobs(&self, ids: &[String]) -> Result<(), ImageStoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.blobs.remove(ids).await
    }

    /// Retention: images older than `max_age`, and each user's images beyond the newest
    /// `per_user_cap`. Feed items that showed them fall back to pending (ON DELETE SET NULL)
    /// and are rendered again when the feed next asks.
    pub async fn enforce_retention(
        &self,
        per_user_cap: i64,
        max_age: std::time::Duration,
    ) -> Result<usize, ImageStoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "DELETE FROM images WHERE id IN (
                 SELECT id FROM images WHERE created_at < now() - make_interval(secs => $2)
                 UNION
                 SELECT id FROM (
                     SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC, id) AS n
                     FROM images) ranked
                 WHERE n > $1)
             RETURNING id",
        )
        .bind(per_user_cap)
        .bind(max_age.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        self.blobs.remove(&ids).await?;
        Ok(ids.len())
    }
}

/// The influencer each image counts toward: its generation's blend's largest weight.
pub async fn influencers_of(
    pool: &PgPool,
    image_ids: &[&str],
) -> Result<HashMap<String, crate::ingest::event::InfluencerRef>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (g.image_id) g.image_id, b.key
         FROM generations g CROSS JOIN LATERAL jsonb_each_text(g.blend) AS b(key, value)
         WHERE g.image_id = ANY($1)
         ORDER BY g.image_id, b.value::float8 DESC, b.key",
    )
    .bind(image_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(image, influencer)| {
            crate::ingest::event::InfluencerRef::parse(influencer)
                .ok()
                .map(|i| (image, i))
        })
        .collect())
}
