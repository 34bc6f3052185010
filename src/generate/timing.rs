//! Where a generation's time went, stage by stage. The HTTP layer sends it as a
//! `Server-Timing` header (W3C Server Timing), so a caller can set each request's latency
//! beside the session run inside it, the truly paired figure a benchmark on a drifting machine
//! needs; each stage is also a Prometheus histogram, `stylecast_generation_stage_seconds`.

use std::future::Future;
use std::time::{Duration, Instant};

/// A stage of `POST /v1/generate`, in the order a cache miss passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The usable influencer styles (Postgres) and the blend.
    Styles,
    /// The upload's hash, the cache lookup, and a hit's pixels decoded.
    Cache,
    /// Decode the upload and fit it to the requested size (blocking pool).
    Decode,
    /// The photo's own style code, below full strength.
    Encoder,
    /// The generator's input tensors from the image, and its output back to the image's
    /// frame (blocking pool).
    Tensors,
    /// Waiting for a generator session (and for the rest of its batch).
    Queue,
    /// The generator session run.
    Model,
    /// Pixels, watermark, output encoding and XMP (blocking pool).
    Encode,
    /// The input and output hashes (blocking pool), the generation record (Postgres) and the
    /// cache write.
    Record,
    /// The whole request inside the service, from the parsed form to the response.
    Total,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Styles => "styles",
            Self::Cache => "cache",
            Self::Decode => "decode",
            Self::Encoder => "encoder",
            Self::Tensors => "tensors",
            Self::Queue => "queue",
            Self::Model => "model",
            Self::Encode => "encode",
            Self::Record => "record",
            Self::Total => "total",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    stages: Vec<(Stage, Duration)>,
}

impl StageTimes {
    /// Adds to the stage's time (a stage may be passed more than once).
    pub fn add(&mut self, stage: Stage, spent: Duration) {
        match self.stages.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total += spent,
            None => self.stages.push((stage, spent)),
        }
    }

    /// Awaits `work`, adding the wait to `stage`.
    pub async fn time<T>(&mut self, stage: Stage, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let value = work.await;
        self.add(stage, started.elapsed());
        value
    }

    pub fn get(&self, stage: Stage) -> Option<Duration> {
        self.stages.iter().find(|(s, _)| *s == stage).map(|(_, d)| *d)
    }

    /// Stage name → milliseconds, in the order the stages were first passed.
    pub fn milliseconds(&self) -> Vec<(String, f64)> {
        self.stages
            .iter()
            .map(|(stage, spent)| (stage.as_str().to_string(), spent.as_secs_f64() * 1000.0))
            .collect()
    }

    /// The `Server-Timing` header value: `decode;dur=2.91, model;dur=40.12, …` (milliseconds).
    pub fn header_value(&self) -> String {
        self.milliseconds()
            .iter()
            .map(|(stage, ms)| format!("{stage};dur={ms:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn record_metrics(&self) {
        for (stage, spent) in &self.stages {
            metrics::histogram!("stylecast_generation_stage_seconds", "stage" => stage.as_str())
                .record(spent.as_secs_f64());
        }
    }
}

/// A `Server-Timing` header value parsed back: stage name → milliseconds. Entries without a
/// duration are skipped.
pub fn parse_header(value: &str) -> Vec<(String, f64)> {
    value
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let name = parts.next().filter(|n| !n.is_empty())?;
            let ms = parts.find_map(|p| p.strip_prefix("dur="))?.parse().ok()?;
            Some((name.to_string(), ms))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_and_read_back_from_the_header() {
        let mut times = StageTimes::default();
        times.add(Stage::Decode, Duration::from_micros(2_500));
        times.add(Stage::Model, Duration::from_millis(40));
        times.add(Stage::Decode, Duration::from_micros(500));
        assert_eq!(times.get(Stage::Decode), Some(Duration::from_millis(3)));
        assert_eq!(times.get(Stage::Queue), None);
        let header = times.header_value();
        assert_eq!(header, "decode;dur=3.00, model;dur=40.00");
        assert_eq!(
            parse_header(&header),
            vec![("decode".to_string(), 3.0), ("model".to_string(), 40.0)]
        );
        assert_eq!(
            parse_header("cache;desc=\"hit\", db;dur=x, ;dur=1, total;dur=7.5"),
            vec![("total".to_string(), 7.5)]
        );
    }
}
