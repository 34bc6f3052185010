//! Logs (tracing) and metrics (Prometheus).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tracing_subscriber::{fmt, EnvFilter};

/// `[log]`: how logs are written.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// An EnvFilter directive; `RUST_LOG` wins when set.
    pub filter: String,
}

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init_tracing(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // stderr: stdout carries the CLI's output (`keys create` prints the new key there), so
    // `KEY=$(stylecast keys create ...)` must not capture log lines.
    let result = if settings.format == "json" {
        fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .with_current_span(false)
            .try_init()
    } else {
        // Colour only on a terminal: redirected to a file, logs carry no ANSI codes.
        fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter)
            .try_init()
    };
    // Err means a subscriber is already installed (several apps in one test process).
    drop(result);
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (the `metrics` facade is global by design).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}
