//! Feed workers: take a job, render the slot it names if that slot still wants that spec,
//! store the image, point the slot at it, and only then acknowledge the job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::error::FeedError;
use super::queue::{Delivery, Job};
use super::Feeds;
use crate::generate::pipeline::{GenerateRequest, StyleChoice};
use crate::ingest::event::UserRef;
use crate::store::feeds as store_feeds;
use crate::store::images::NewImage;
use crate::store::styles::FeedOrigin;

/// What became of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Rendered,
    Planned,
    /// The slot moved on (new spec, photo deleted, image already there): nothing to do.
    Stale,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Rendered => "rendered",
            Self::Planned => "planned",
            Self::Stale => "stale",
            Self::Failed => "failed",
        }
    }
}

/// Runs `concurrency` job loops until `stop` turns true; each finishes its current job first.
pub async fn run(feeds: Arc<Feeds>, name: String, concurrency: usize, stop: watch::Receiver<bool>) {
    tracing::info!(worker = %name, concurrency, queue = feeds.queue.kind(), "feed worker started");
    let loops: Vec<_> = (0..concurrency.max(1))
        .map(|i| tokio::spawn(job_loop(feeds.clone(), format!("{name}-{i}"), stop.clone())))
        .collect();
    for handle in loops {
        let _ = handle.await;
    }
    tracing::info!(worker = %name, "feed worker stopped");
}

async fn job_loop(feeds: Arc<Feeds>, consumer: String, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let delivery = tokio::select! {
            next = feeds.queue.next(&consumer, Duration::from_millis(500)) => next,
            _ = stop.changed() => break,
        };
        match delivery {
            Ok(Some(delivery)) => handle(&feeds, &delivery).await,
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "reading feed jobs failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Processes one delivery and acknowledges it unless processing hit an outage (then the
/// job stays pending and another worker, or this one, takes it over later).
pub async fn handle(feeds: &Feeds, delivery: &Delivery) {
    let started = Instant::now();
    let outcome = process(feeds, &delivery.job).await;
    let label = match &outcome {
        Ok(outcome) => outcome.as_str(),
        Err(_) => "error",
    };
    metrics::counter!("stylecast_feed_jobs_total", "outcome" => label).increment(1);
    metrics::histogram!("stylecast_feed_job_seconds").record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(_) => {
            if let Err(err) = feeds.queue.ack(delivery).await {
                tracing::warn!(error = %err, id = %delivery.id, "acknowledging a feed job failed; it will be redone");
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, job = ?delivery.job, "feed job not done; left for a retry");
        }
    }
}

/// Ok(outcome) means the job is finished (acknowledge it); Err means retry later.
pub async fn process(feeds: &Feeds, job: &Job) -> Result<Outcome, FeedError> {
    match job {
        Job::Refresh { user } => {
            let Ok(user) = UserRef::parse(user.as_str()) else {
                return Ok(Outcome::Stale);
            };
            super::refresh(feeds, &user).await?;
            Ok(Outcome::Planned)
        }
        Job::Render {
            user,
            slot,
            spec,
            rank,
            score,
            recommendation_model,
        } => {
            let origin = FeedOrigin {
                slot: slot.clone(),
                rank: *rank,
                score: *score,
                recommendation_model: *recommendation_model,
            };
            render(feeds, user, spec, origin).await
        }
    }
}

async fn render(feeds: &Feeds, user: &str, spec: &str, origin: FeedOrigin) -> Result<Outcome, FeedError> {
    let Some(user_id) = crate::store::vectors::user_id(&feeds.pool, user).await? else {
        return Ok(Outcome::Stale);
    };
    let Some(target) = store_feeds::render_target(&feeds.pool, user_id, &origin.slot, spec).await? else {
        return Ok(Outcome::Stale);
    };
    let Some(blend) = super::stored_blend(&target.blend) else {
        return Ok(Outcome::Stale);
    };
    // Painted by the generator of the user's variant, as the plan's spec assumed (a spec
    // planned before the experiment stopped is re-planned with the default one).
    let assignment = feeds.generation.recommender.experiments().assign(user).await;
    let pipeline = feeds.generation.pipeline_for(assignment.as_ref())?;
    let request = GenerateRequest {
        photo: Bytes::from(target.photo),
        photo_sha256: Some(target.photo_sha256),
        user: user.to_string(),
        choice: StyleChoice::Interests,
        strength: feeds.settings.strength,
        size: feeds.settings.size,
        format: feeds.settings.format,
    };
    let slot = origin.slot.clone();
    let generated = match pipeline.generate_for_feed(request, blend, origin).await {
        Ok(generated) => generated,
        Err(err) if err.is_permanent() => {
            // A bad spec (style withdrawn, photo unreadable) will not fix itself.
            store_feeds::record_failure(
                &feeds.pool,
                user_id,
                &slot,
                spec,
                &err.to_string(),
                feeds.settings.max_attempts,
            )
            .await?;
            return Ok(Outcome::Failed);
        }
        Err(err) => {
            if target.attempts >= feeds.settings.max_attempts {
                store_feeds::record_failure(
                    &feeds.pool,
                    user_id,
                    &slot,
                    spec,
                    &err.to_string(),
                    feeds.settings.max_attempts,
                )
                .await?;
                return Ok(Outcome::Failed);
            }
            return Err(err.into());
        }
    };
    let (width, height) = dimensions(&generated.image);
    let image_id = feeds
        .images
        .put(&NewImage {
            user_id,
            bytes: &generated.image,
            content_type: generated.format.content_type(),
            width,
            height,
        })
        .await?;
    store_feeds::complete(&feeds.pool, user_id, &slot, spec, image_id.as_str(), generated.id).await?;
    Ok(Outcome::Rendered)
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok())
        .unwrap_or((0, 0))
}
