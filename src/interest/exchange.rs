//! The interaction matrix out to an external trainer, and its factors back in: past one
//! machine the ALS runs on Spark MLlib (`spark/als.py`), and this module is the contract.
//!
//! `stylecast embed --export DIR` writes, from one snapshot:
//! - `interactions.parquet`: `user` INT32, `influencer` INT32 (dense indices), `affinity`
//!   FLOAT (decayed to now; one row per pair), `confidence` FLOAT (1 + alpha · affinity,
//!   what the native ALS weighs the cell with);
//! - `users.parquet`, `influencers.parquet`: `index` INT32 → `id` INT64 (internal ids);
//! - `export.json`: the ALS settings (factors, regularization, alpha, iterations, seed) and
//!   the counts.
//!
//! The job writes back `user_factors/` and `influencer_factors/` (Spark's `ALSModel`
//! `userFactors` / `itemFactors`: `id` INT32, `features` LIST<FLOAT>, in part files) and
//! `train.json`. `stylecast embed --import DIR` checks that every exported index has exactly
//! one finite vector of the exported width, drops people erased since the export, and
//! publishes the vectors as a new model version (`trainer = 'spark'`) the way a native build
//! does: under the build lock, in one switch, the previous version kept for readers.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ndarray::Array2;
use parquet::basic::Compression;
use parquet::data_type::{FloatType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::{Field, Row};
use parquet::schema::parser::parse_message_type;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::als::AlsParams;
use super::embed::{load_matrix, with_build_lock, EmbedError, LoadedMatrix};
use crate::store::vectors::{self, BuildSummary, Trainer, VectorTable};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// `export.json`: what the trainer must use, and what the import checks against.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportManifest {
    pub params: AlsParams,
    pub users: usize,
    pub influencers: usize,
    pub interactions: usize,
    pub exported_at: chrono::DateTime<chrono::Utc>,
}

/// `train.json`, written by the trainer.
#[derive(Debug, Deserialize)]
struct TrainReport {
    trainer: String,
    train_seconds: f64,
}

#[derive(Debug, Clone)]
pub struct ExportReport {
    pub users: usize,
    pub influencers: usize,
    pub interactions: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct ImportReport {
    pub version: i64,
    pub users: usize,
    pub influencers: usize,
    /// Exported people with no row any more (erased since the export): left out.
    pub dropped: usize,
    pub train_seconds: f64,
}

/// Rows per Parquet row group: about 12 MB of cells, so a 10M-cell export streams through
/// bounded buffers.
const ROW_GROUP: usize = 1 << 20;

pub async fn export(pool: &PgPool, dir: &Path, params: &AlsParams) -> Result<ExportReport, ExchangeError> {
    let started = Instant::now();
    let matrix = load_matrix(pool).await?;
    if matrix.cells.is_empty() {
        return Err(EmbedError::NoData.into());
    }
    let params = *params;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || write_export(&dir, matrix, params))
        .await
        .map_err(|err| EmbedError::Task(err.to_string()))?
        .map(|(users, influencers, interactions)| ExportReport {
            users,
            influencers,
            interactions,
            seconds: started.elapsed().as_secs_f64(),
        })
}

fn write_export(dir: &Path, matrix: LoadedMatrix, params: AlsParams) -> Result<(usize, usize, usize), ExchangeError> {
    std::fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
    let LoadedMatrix {
        user_ids,
        influencer_ids,
        cells,
    } = matrix;
    let cells = merge_pairs(cells);
    write_interactions(&dir.join("interactions.parquet"), &cells, params.alpha)?;
    write_ids(&dir.join("users.parquet"), &user_ids)?;
    write_ids(&dir.join("influencers.parquet"), &influencer_ids)?;
    let manifest = ExportManifest {
        params,
        users: user_ids.len(),
        influencers: influencer_ids.len(),
        interactions: cells.len(),
        exported_at: chrono::Utc::now(),
    };
    let path = dir.join("export.json");
    let text = serde_json::to_vec_pretty(&manifest).map_err(|source| ExchangeError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, text).map_err(|source| io(&path, source))?;
    Ok((manifest.users, manifest.influencers, manifest.interactions))
}

/// One cell per (user, influencer): the stream gives activity, follow and like parts
/// separately, and an external ALS would count each as its own observation.
fn merge_pairs(mut cells: Vec<(u32, u32, f32)>) -> Vec<(u32, u32, f32)> {
    cells.sort_unstable_by_key(|&(u, i, _)| (u, i));
    let mut merged: Vec<(u32, u32, f32)> = Vec::with_capacity(cells.len());
    for (u, i, a) in cells {
        match merged.last_mut() {
            Some(last) if (last.0, last.1) == (u, i) => last.2 += a,
            _ => merged.push((u, i, a)),
        }
    }
    merged
}

fn writer(path: &Path, schema: &str) -> Result<SerializedFileWriter<File>, ExchangeError> {
    let schema = Arc::new(parse_message_type(schema).map_err(|source| parquet_error(path, source))?);
    let properties = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let file = File::create(path).map_err(|source| io(path, source))?;
    SerializedFileWriter::new(file, schema, properties).map_err(|source| parquet_error(path, source))
}

fn write_interactions(path: &Path, cells: &[(u32, u32, f32)], alpha: f32) -> Result<(), ExchangeError> {
    let mut file = writer(
        path,
        "message interactions { REQUIRED INT32 user; REQUIRED INT32 influencer;
                                REQUIRED FLOAT affinity; REQUIRED FLOAT confidence; }",
    )?;
    let fail = |source| parquet_error(path, source);
    for chunk in cells.chunks(ROW_GROUP) {
        let users: Vec<i32> = chunk.iter().map(|c| c.0 as i32).collect();
        let influencers: Vec<i32> = chunk.iter().map(|c| c.1 as i32).collect();
        let affinity: Vec<f32> = chunk.iter().map(|c| c.2).collect();
        let confidence: Vec<f32> = affinity.iter().map(|a| 1.0 + alpha * a).collect();
        let mut group = file.next_row_group().map_err(fail)?;
        for values in [&users, &influencers] {
            let mut column = group.next_column().map_err(fail)?.ok_or_else(|| missing_column(path))?;
            column
                .typed::<Int32Type>()
                .write_batch(values, None, None)
                .map_err(fail)?;
            column.close().map_err(fail)?;
        }
        for values in [&affinity, &confidence] {
            let mut column = group.next_column().map_err(fail)?.ok_or_else(|| missing_column(path))?;
            column
                .typed::<FloatType>()
                .write_batch(values, None, None)
                .map_err(fail)?;
            column.close().map_err(fail)?;
        }
        group.close().map_err(fail)?;
    }
    file.close().map_err(fail)?;
    Ok(())
}

fn write_ids(path: &Path, ids: &[i64]) -> Result<(), ExchangeError> {
    let mut file = writer(path, "message ids { REQUIRED INT32 index; REQUIRED INT64 id; }")?;
    let fail = |source| parquet_error(path, source);
    for (n, chunk) in ids.chunks(ROW_GROUP).enumerate() {
        let first = n * ROW_GROUP;
        let index: Vec<i32> = (first..first + chunk.len()).map(|i| i as i32).collect();
        let mut group = file.next_row_group().map_err(fail)?;
        let mut column = group.next_column().map_err(fail)?.ok_or_else(|| missing_column(path))?;
        column
            .typed::<Int32Type>()
            .write_batch(&index, None, None)
            .map_err(fail)?;
        column.close().map_err(fail)?;
        let mut column = group.next_column().map_err(fail)?.ok_or_else(|| missing_column(path))?;
        column
            .typed::<Int64Type>()
            .write_batch(chunk, None, None)
            .map_err(fail)?;
        column.close().map_err(fail)?;
        group.close().map_err(fail)?;
    }
    file.close().map_err(fail)?;
    Ok(())
}

pub async fn import(pool: &PgPool, dir: &Path) -> Result<ImportReport, ExchangeError> {
    with_build_lock(pool, import_locked(pool, dir)).await
}

async fn import_locked(pool: &PgPool, dir: &Path) -> Result<ImportReport, ExchangeError> {
    let folder = dir.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || read_import(&folder))
        .await
        .map_err(|err| EmbedError::Task(err.to_string()))??;
    let Imported {
        manifest,
        report,
        user_ids,
        user_factors,
        influencer_ids,
        influencer_factors,
    } = loaded;
    let (user_ids, user_factors, dropped_users) = keep_existing(pool, "users", user_ids, user_factors).await?;
    let (influencer_ids, influencer_factors, dropped_influencers) =
        keep_existing(pool, "influencers", influencer_ids, influencer_factors).await?;

    let version = vectors::begin_build(pool, &manifest.params, Trainer::Spark).await?;
    vectors::copy_vectors(
        pool,
        VectorTable::Influencers,
        version,
        &influencer_ids,
        &influencer_factors,
    )
    .await?;
    vectors::copy_vectors(pool, VectorTable::Users, version, &user_ids, &user_factors).await?;
    let summary = BuildSummary {
        users: user_ids.len() as i32,
        influencers: influencer_ids.len() as i32,
        interactions: manifest.interactions as i64,
        train_seconds: report.train_seconds,
    };
    vectors::publish(pool, version, &summary).await?;
    Ok(ImportReport {
        version,
        users: user_ids.len(),
        influencers: influencer_ids.len(),
        dropped: dropped_users + dropped_influencers,
        train_seconds: report.train_seconds,
    })
}

struct Imported {
    manifest: ExportManifest,
    report: TrainReport,
    user_ids: Vec<i64>,
    user_factors: Array2<f32>,
    influencer_ids: Vec<i64>,
    influencer_factors: Array2<f32>,
}

fn read_import(dir: &Path) -> Result<Imported, ExchangeError> {
    let manifest: ExportManifest = read_json(&dir.join("export.json"))?;
    let report: TrainReport = read_json(&dir.join("train.json"))?;
    if report.trainer != "spark" {
        return Err(invalid(
            &dir.join("train.json"),
            format!("trainer is {:?}; only \"spark\" is imported", report.trainer),
        ));
    }
    let factors = manifest.params.factors;
    let user_ids = read_ids(&dir.join("users.parquet"), manifest.users)?;
    let influencer_ids = read_ids(&dir.join("influencers.parquet"), manifest.influencers)?;
    let user_factors = read_factors(&dir.join("user_factors"), manifest.users, factors)?;
    let influencer_factors = read_factors(&dir.join("influencer_factors"), manifest.influencers, factors)?;
    Ok(Imported {
        manifest,
        report,
        user_ids,
        user_factors,
        influencer_ids,
        influencer_factors,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExchangeError> {
    let text = std::fs::read(path).map_err(|source| io(path, source))?;
    serde_json::from_slice(&text).map_err(|source| ExchangeError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Every row of one Parquet file, or of every `*.parquet` part file in a folder (how Spark
/// writes a DataFrame).
fn rows(path: &Path, mut each: impl FnMut(&Path, Row) -> Result<(), ExchangeError>) -> Result<(), ExchangeError> {
    let files = if path.is_dir() {
        let mut parts: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| io(path, source))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        parts.sort();
        parts
    } else {
        vec![path.to_path_buf()]
    };
    for file in files {
        let reader = File::open(&file)
            .map_err(|source| io(&file, source))
            .and_then(|f| SerializedFileReader::new(f).map_err(|source| parquet_error(&file, source)))?;
        let iter = reader
            .get_row_iter(None)
            .map_err(|source| parquet_error(&file, source))?;
        for row in iter {
            each(&file, row.map_err(|source| parquet_error(&file, source))?)?;
        }
    }
    Ok(())
}

/// A column of a row by name.
fn field<'r>(row: &'r Row, name: &str, file: &Path) -> Result<&'r Field, ExchangeError> {
    row.get_column_iter()
        .find(|(column, _)| column.as_str() == name)
        .map(|(_, value)| value)
        .ok_or_else(|| invalid(file, format!("no column {name:?}")))
}

/// A dense index in `0..count`.
fn index(value: &Field, count: usize, file: &Path) -> Result<usize, ExchangeError> {
    match value {
        Field::Int(i) if (0..count as i64).contains(&i64::from(*i)) => Ok(*i as usize),
        Field::Long(i) if (0..count as i64).contains(i) => Ok(*i as usize),
        other => Err(invalid(file, format!("index {other} is not in 0..{count}"))),
    }
}

fn read_ids(path: &Path, count: usize) -> Result<Vec<i64>, ExchangeError> {
    let mut ids: Vec<Option<i64>> = vec![None; count];
    rows(path, |file, row| {
        let at = index(field(&row, "index", file)?, count, file)?;
        let Field::Long(id) = field(&row, "id", file)? else {
            return Err(invalid(file, "id is not INT64".into()));
        };
        ids[at] = Some(*id);
        Ok(())
    })?;
    complete(ids, path)
}

/// Factor rows `id` → `features`, each index exactly once, each finite and `factors` wide.
fn read_factors(path: &Path, count: usize, factors: usize) -> Result<Array2<f32>, ExchangeError> {
    let mut matrix = Array2::<f32>::zeros((count, factors));
    let mut seen = vec![false; count];
    rows(path, |file, row| {
        let at = index(field(&row, "id", file)?, count, file)?;
        if std::mem::replace(&mut seen[at], true) {
            return Err(invalid(file, format!("index {at} has two vectors")));
        }
        let Field::ListInternal(list) = field(&row, "features", file)? else {
            return Err(invalid(file, "features is not a list".into()));
        };
        if list.len() != factors {
            return Err(invalid(
                file,
                format!("index {at} has {} features; the export asked for {factors}", list.len()),
            ));
        }
        for (slot, value) in matrix.row_mut(at).iter_mut().zip(list.elements()) {
            *slot = match value {
                Field::Float(v) if v.is_finite() => *v,
                Field::Double(v) if v.is_finite() => *v as f32,
                other => {
                    return Err(invalid(
                        file,
                        format!("index {at}: feature {other} is not a finite number"),
                    ))
                }
            };
        }
        Ok(())
    })?;
    match seen.iter().position(|s| !s) {
        Some(at) => Err(invalid(path, format!("index {at} has no vector ({count} exported)"))),
        None => Ok(matrix),
    }
}

fn complete(ids: Vec<Option<i64>>, path: &Path) -> Result<Vec<i64>, ExchangeError> {
    ids.into_iter()
        .enumerate()
        .map(|(at, id)| id.ok_or_else(|| invalid(path, format!("index {at} is missing"))))
        .collect()
}

/// The ids (and their vector rows) that still exist: a person erased between export and
/// import must not come back with the new model.
async fn keep_existing(
    pool: &PgPool,
    table: &'static str,
    ids: Vec<i64>,
    factors: Array2<f32>,
) -> Result<(Vec<i64>, Array2<f32>, usize), ExchangeError> {
    let sql = match table {
        "users" => "SELECT id FROM users WHERE id = ANY($1)",
        _ => "SELECT id FROM influencers WHERE id = ANY($1)",
    };
    let existing: HashSet<i64> = sqlx::query_scalar::<_, i64>(sql)
        .bind(&ids)
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    if existing.len() == ids.len() {
        return Ok((ids, factors, 0));
    }
    let keep: Vec<usize> = (0..ids.len()).filter(|&n| existing.contains(&ids[n])).collect();
    let kept_ids = keep.iter().map(|&n| ids[n]).collect();
    let kept = factors.select(ndarray::Axis(0), &keep);
    Ok((kept_ids, kept, ids.len() - keep.len()))
}

fn io(path: &Path, source: std::io::Error) -> ExchangeError {
    ExchangeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parquet_error(path: &Path, source: parquet::errors::ParquetError) -> ExchangeError {
    ExchangeError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, reason: String) -> ExchangeError {
    ExchangeError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

fn missing_column(path: &Path) -> ExchangeError {
    invalid(path, "the schema has fewer columns than written".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_merged_into_one_cell() {
        let merged = merge_pairs(vec![(1, 2, 0.5), (0, 1, 1.0), (1, 2, 0.25), (0, 0, 2.0)]);
        assert_eq!(merged, vec![(0, 0, 2.0), (0, 1, 1.0), (1, 2, 0.75)]);
    }

    #[test]
    fn ids_round_trip_and_factor_files_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = dir.path().join("ids.parquet");
        write_ids(&ids, &[40, 7, 19]).expect("write");
        assert_eq!(read_ids(&ids, 3).expect("read"), vec![40, 7, 19]);
        // Fewer exported than the file holds: an index out of range is refused.
        let error = read_ids(&ids, 2).expect_err("index 2 is outside 0..2");
        assert!(error.to_string().contains("not in 0..2"), "{error}");
        // A folder without part files has no vectors at all.
        let empty = dir.path().join("factors");
        std::fs::create_dir(&empty).expect("mkdir");
        let error = read_factors(&empty, 2, 4).expect_err("no vectors");
        assert!(error.to_string().contains("index 0 has no vector"), "{error}");
    }
}
