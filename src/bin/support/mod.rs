//! What the benchmark binaries share: a throwaway database, the app on a random port, the
//! demo influencers, percentiles.

// Each benchmark binary uses part of this module.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection};
use stylecast::config::Settings;
use stylecast::startup::Application;

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The service on a random port against a database made for this run (dropped by `stop`).
pub struct BenchApp {
    pub base: String,
    pub key: String,
    pub database_url: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    database: String,
    server_url: String,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BenchApp {
    pub async fn start(server_url: &str, tag: &str, customize: impl FnOnce(&mut Settings)) -> anyhow::Result<Self> {
        let database = format!("stylecast_bench_{tag}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{server_url}/postgres")).await?;
        admin
            .execute(format!(r#"CREATE DATABASE "{database}""#).as_str())
            .await?;
        let database_url = format!("{server_url}/{database}");
        let mut settings = Settings::load(None)?;
        settings.server.port = 0;
        settings.database.url = SecretString::from(database_url.clone());
        settings.redis.url = None;
        settings.log.filter = "warn".into();
        let key = format!("bench-{}", uuid::Uuid::new_v4());
        settings.auth.admin_key = Some(SecretString::from(key.clone()));
        customize(&mut settings);
        let app = Application::build(settings.clone()).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        Ok(Self {
            base,
            key,
            database_url,
            settings,
            client: reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?,
            database,
            server_url: server_url.to_string(),
            handle,
            server,
        })
    }

    /// Demo influencers (consenting) with their three reference photos each.
    pub async fn add_influencers(&self, ids: &[&str]) -> anyhow::Result<()> {
        for influencer in ids {
            self.client
                .put(format!("{}/v1/influencers/{influencer}", self.base))
                .bearer_auth(&self.key)
                .json(&serde_json::json!({"consent": true}))
                .send()
                .await?
                .error_for_status()?;
            for n in 0..3 {
                let photo =
                    std::fs::read(format!("onnx/styles/{influencer}/{n}.jpg")).context("run bash onnx/check.sh")?;
                self.client
                    .post(format!("{}/v1/influencers/{influencer}/photos", self.base))
                    .bearer_auth(&self.key)
                    .body(photo)
                    .send()
                    .await?
                    .error_for_status()?;
            }
        }
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.server.await??;
        let mut admin = PgConnection::connect(&format!("{}/postgres", self.server_url)).await?;
        admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.database).as_str())
            .await?;
        Ok(())
    }
}
