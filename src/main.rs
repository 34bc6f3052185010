use anyhow::Context;
use clap::Parser;
use stylecast::cli::{Cli, Command, KeysCommand};
use stylecast::config::Settings;
use stylecast::startup::Application;
use stylecast::{keys, store, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init_tracing(&settings.log);
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::Keys { command } => manage_keys(&settings, command).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings)
        .await
        .context("starting stylecast")?;
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    shutdown_signal().await;
    tracing::info!("shutdown signal received; finishing in-flight requests");
    handle.stop(true).await;
    server.await.context("server task")?.context("server")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    store::create_database_if_missing(&settings.database).await?;
    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    println!(
        "migrations applied to {}",
        store::redacted_target(secrecy::ExposeSecret::expose_secret(&settings.database.url))
    );
    Ok(())
}

async fn manage_keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    store::create_database_if_missing(&settings.database).await?;
    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    match command {
        KeysCommand::Create { name, scopes } => {
            let scopes = keys::parse_scopes(&scopes)?;
            anyhow::ensure!(!scopes.is_empty(), "give at least one scope");
            let key = keys::generate();
            store::keys::insert(&pool, &key, &name, &scopes).await?;
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "created key {} ({name}) with scopes {}; it is shown only once:",
                key.id,
                names.join(",")
            );
            println!("{}", key.token);
        }
        KeysCommand::List => {
            for key in store::keys::list(&pool).await? {
                let state = key
                    .revoked_at
                    .map_or("active".to_string(), |at| format!("revoked {at}"));
                println!(
                    "{}  {:<24} {:<32} {}  {state}",
                    key.id,
                    key.name,
                    key.scopes.join(","),
                    key.created_at
                );
            }
        }
        KeysCommand::Revoke { id } => {
            anyhow::ensure!(store::keys::revoke(&pool, id).await?, "no active key {id}");
            println!("revoked {id}");
        }
    }
    Ok(())
}
