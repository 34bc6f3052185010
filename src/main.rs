use anyhow::Context;
use clap::Parser;
use stylecast::cli::{
    Cli, Command, DemoArgs, EmbedArgs, EvalRecsArgs, EvalStylesArgs, GenerateArgs, KeysCommand, SeedArgs,
    StylesCommand, WorkerArgs,
};
use stylecast::config::Settings;
use stylecast::interest::als;
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
        Command::Worker(args) => worker(settings, args).await,
        Command::Keys { command } => manage_keys(&settings, command).await,
        Command::EvalRecs(args) => eval_recs(&args),
        Command::Embed(args) => embed(&settings, &args).await,
        Command::Generate(args) => generate(&settings, &args).await,
        Command::Styles {
            command: StylesCommand::Rebuild,
        } => rebuild_styles(&settings).await,
        Command::Seed(args) => seed(&settings, &args).await,
        Command::Demo(args) => demo(&settings, &args).await,
        Command::EvalStyles(args) => eval_styles(&settings, &args).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await.context("starting stylecast")?;
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    shutdown_signal().await;
    tracing::info!("shutdown signal received; finishing in-flight requests");
    handle.stop(true).await;
    server.await.context("server task")?.context("server")?;
    tracing::info!("stopped");
    Ok(())
}

async fn worker(settings: Settings, args: WorkerArgs) -> anyhow::Result<()> {
    // The feed's own services: no HTTP state, no listener.
    let services = stylecast::startup::build_services(&settings)
        .await
        .context("starting the feed worker")?;
    let name = args.name.unwrap_or_else(|| stylecast::startup::worker_name("worker"));
    let concurrency = args.concurrency.unwrap_or(settings.feed.worker_concurrency);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(stylecast::feed::worker::run(
        services.feeds.clone(),
        name,
        concurrency,
        stopped,
    ));
    shutdown_signal().await;
    tracing::info!("shutdown signal received; finishing the jobs in hand");
    let _ = stop.send(true);
    task.await.context("worker task")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
            let name = name.trim().to_string();
            anyhow::ensure!(
                !name.is_empty(),
                "--name must not be empty: it is how `keys list` shows the key"
            );
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

fn eval_recs(args: &EvalRecsArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.train).with_context(|| format!("reading {}", args.train.display()))?;
    let mut triples = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(
            fields.len() == 3,
            "line {}: expected 3 tab-separated fields",
            number + 1
        );
        let (user, item) = (fields[0].parse::<u32>()?, fields[1].parse::<u32>()?);
        anyhow::ensure!(
            (user as usize) < args.users && (item as usize) < args.items,
            "line {}: user {user} or item {item} is outside --users {} / --items {}",
            number + 1,
            args.users,
            args.items
        );
        triples.push((user, item, fields[2].parse::<f32>()?));
    }
    let params = als::AlsParams::from(&args.als);
    let data = als::Confidences::from_triples(args.users, args.items, triples, params.alpha);
    let started = std::time::Instant::now();
    let model = als::train(&data, &params, |_| {});
    let train_seconds = started.elapsed().as_secs_f64();

    let mut out = String::new();
    for user in 0..args.users {
        let vector = model.user_factors.row(user).to_vec();
        let mut scored: Vec<(usize, f32)> = als::scores(&model.item_factors.view(), &vector)
            .into_iter()
            .enumerate()
            .collect();
        let seen: std::collections::HashSet<u32> = data.row(user).0.iter().copied().collect();
        scored.retain(|(item, _)| !seen.contains(&(*item as u32)));
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = scored.iter().take(args.k).map(|(item, _)| item.to_string()).collect();
        out.push_str(&format!("{user}\t{}\n", top.join(",")));
    }
    std::fs::write(&args.out, out)?;
    println!(
        "{}",
        serde_json::json!({ "train_seconds": train_seconds, "nnz": data.nnz(), "params": params })
    );
    Ok(())
}

async fn embed(settings: &Settings, args: &EmbedArgs) -> anyhow::Result<()> {
    use stylecast::interest::exchange;

    store::create_database_if_missing(&settings.database).await?;
    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    if let Some(dir) = &args.export {
        let report = exchange::export(&pool, dir, &settings.embedding.als).await?;
        println!(
            "exported {} users x {} influencers, {} interactions to {} in {:.2}s; train with: python spark/als.py {}",
            report.users,
            report.influencers,
            report.interactions,
            dir.display(),
            report.seconds,
            dir.display()
        );
        return Ok(());
    }
    if let Some(dir) = &args.import {
        let report = exchange::import(&pool, dir).await?;
        println!(
            "embedding model v{} from spark: {} users x {} influencers ({} erased since the export left out); trained in {:.2}s",
            report.version, report.users, report.influencers, report.dropped, report.train_seconds
        );
        return Ok(());
    }
    let (report, factors) = build_embeddings(settings, &pool).await?;
    println!(
        "embedding model v{}: {} users x {} influencers, {} interactions, {factors} factors; loaded in {:.2}s, trained in {:.2}s, written in {:.2}s, {:.2}s in all",
        report.version,
        report.users,
        report.influencers,
        report.interactions,
        report.load_seconds,
        report.train_seconds,
        report.write_seconds,
        report.total_seconds
    );
    Ok(())
}

/// The ALS build with a progress bar; the report and the factor count.
async fn build_embeddings(
    settings: &Settings,
    pool: &sqlx::PgPool,
) -> anyhow::Result<(stylecast::interest::embed::EmbedReport, usize)> {
    use indicatif::{ProgressBar, ProgressStyle};
    use stylecast::interest::embed::{self, Stage};

    let params = settings.embedding.als;
    let bar = ProgressBar::new(params.iterations as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:<10} [{bar:30}] {pos}/{len} iterations {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let report = embed::rebuild(pool, &params, move |stage| match stage {
        Stage::Loading => progress.set_message("loading"),
        Stage::Training { iteration, .. } => {
            progress.set_message("training");
            progress.set_position(iteration as u64);
        }
        Stage::Writing => progress.set_message("writing"),
    })
    .await?;
    bar.finish_and_clear();
    Ok((report, params.factors))
}

/// The format `--out`'s extension names (.png, .jpg/.jpeg, .webp), in a folder that exists.
fn output_format(out: &std::path::Path) -> anyhow::Result<stylecast::media::OutputFormat> {
    let extension = out.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let format = stylecast::media::OutputFormat::parse(extension).ok_or_else(|| {
        anyhow::anyhow!(
            "--out {}: the extension picks the format; use .png, .jpg, .jpeg or .webp",
            out.display()
        )
    })?;
    let folder = out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder.filter(|folder| !folder.is_dir()) {
        anyhow::bail!("--out {}: folder {} does not exist", out.display(), folder.display());
    }
    Ok(format)
}

/// The process-wide models (`load_models` keeps its own handle on them, so they stay shared).
async fn models_or_explain(settings: &Settings) -> anyhow::Result<std::sync::Arc<stylecast::generate::models::Models>> {
    let (models, status) = stylecast::startup::load_models(settings);
    models.ok_or_else(|| anyhow::anyhow!("models unavailable: {}", status.error.unwrap_or_default()))
}

async fn generate(settings: &Settings, args: &GenerateArgs) -> anyhow::Result<()> {
    use stylecast::generate::pipeline::{GenerateRequest, Pipeline, StyleChoice};

    // Checked before any rendering, so a wrong --out costs nothing.
    let format = output_format(&args.out)?;
    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    let models = models_or_explain(settings).await?;
    let deployment = store::deployment_id(&pool).await?;
    let cache = std::sync::Arc::new(stylecast::cache::Cache::new(&settings.redis, deployment)?);
    let recommender = stylecast::recommend::Recommender::new(
        pool.clone(),
        cache.clone(),
        std::time::Duration::from_secs(settings.embedding.recommendation_ttl_secs),
        std::time::Duration::from_secs(settings.embedding.popularity_max_age_secs),
        std::sync::Arc::new(stylecast::experiment::Experiments::new(pool.clone())),
        // A one-shot generation is served to nobody: nothing to attribute.
        stylecast::served::Impressions::disabled(),
    );
    // One-shot generation paints with the configured generator only; a user in a variant
    // whose generator it has not loaded gets an error that says so.
    let pipeline = Pipeline {
        pool: &pool,
        models: &models,
        alternates: &[],
        recommender: &recommender,
        cache: &cache,
        settings: &settings.generate,
        limits: settings.media,
    };
    let choice = match (&args.influencer, &args.mix) {
        (Some(id), _) => StyleChoice::Influencer(id.clone()),
        (None, Some(mix)) => StyleChoice::parse_mix(mix).map_err(|e| anyhow::anyhow!("{e}"))?,
        (None, None) => StyleChoice::Interests,
    };
    let photo = std::fs::read(&args.photo).with_context(|| format!("reading {}", args.photo.display()))?;
    let started = std::time::Instant::now();
    let generated = pipeline
        .generate(GenerateRequest {
            photo: photo.into(),
            photo_sha256: None,
            user: args.user.clone(),
            choice,
            strength: args.strength,
            size: args.size,
            format,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(&args.out, &generated.image).with_context(|| format!("writing {}", args.out.display()))?;
    let blend: Vec<String> = generated
        .blend
        .weights
        .iter()
        .map(|w| format!("{}={:.3}", w.influencer, w.weight))
        .collect();
    println!(
        "wrote {} ({} bytes) in {:.0} ms: blend {} ({}), model {}, provider {}, cache {}",
        args.out.display(),
        generated.image.len(),
        started.elapsed().as_secs_f64() * 1000.0,
        blend.join(","),
        generated.blend.source.as_str(),
        generated.model_version,
        generated.provider,
        if generated.cache_hit { "hit" } else { "miss" }
    );
    Ok(())
}

async fn rebuild_styles(settings: &Settings) -> anyhow::Result<()> {
    use indicatif::ProgressBar;
    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    let models = models_or_explain(settings).await?;
    let bar = ProgressBar::new(0);
    let started = std::time::Instant::now();
    let count = stylecast::style::service::rebuild_all(&pool, &models, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    println!(
        "rebuilt the styles of {count} influencers with encoder {} in {:.1}s",
        models.encoder.version,
        started.elapsed().as_secs_f64()
    );
    for alternate in stylecast::startup::load_alternates(settings, Some(&models)) {
        let coded = stylecast::style::service::encode_missing(&pool, &alternate)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "coded {coded} photos for experiment generator {} (encoder {})",
            alternate.backend.as_str(),
            alternate.encoder.version
        );
    }
    Ok(())
}

fn progress_bar(len: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let template = format!("{{msg:<12}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}} (eta {{eta}})");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

async fn seed(settings: &Settings, args: &SeedArgs) -> anyhow::Result<()> {
    use stylecast::tools::seed::{self, SeedPlan};

    let plan = SeedPlan {
        users: args.users,
        influencers: args.influencers,
        events: args.events,
        batch: args.batch.min(settings.ingest.max_events_per_batch),
        seed: args.seed,
        prefix: args.prefix.clone(),
        days: args.days,
        concurrency: args.concurrency,
    };
    plan.validate().map_err(anyhow::Error::msg)?;
    let (pool, ingestor) = stylecast::tools::open_ingest(settings).await?;
    let bar = progress_bar(plan.events as u64, "events");
    bar.set_message("ingesting");
    let started = std::time::Instant::now();
    let report = seed::run(&ingestor, &plan, |done| bar.set_position(done as u64))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let embedded = if args.embed {
        let (model, _) = build_embeddings(settings, &pool).await?;
        format!("; embedding model v{}", model.version)
    } else {
        String::new()
    };
    println!(
        "seeded {} events for {} users x {} influencers in {} batches: {} accepted, {} duplicates, {} rejected in {seconds:.1}s ({:.0} events/s){embedded}",
        plan.events,
        plan.users,
        plan.influencers,
        report.batches,
        report.accepted,
        report.duplicates,
        report.rejected,
        plan.events as f64 / seconds.max(1e-9)
    );
    Ok(())
}

async fn demo(settings: &Settings, args: &DemoArgs) -> anyhow::Result<()> {
    use stylecast::tools::demo::{self, Listing};

    let styles = args
        .styles
        .clone()
        .unwrap_or_else(|| settings.onnx.model_dir.join("styles"));
    let listing = Listing::load(&styles)?;
    let (pool, ingestor) = stylecast::tools::open_ingest(settings).await?;
    let models = models_or_explain(settings).await?;
    let started = std::time::Instant::now();
    let bar = progress_bar(listing.photo_count() as u64, "photos");
    bar.set_message("styles");
    let photos = demo::load_influencers(&pool, &models, settings.media, &styles, &listing, |done| {
        bar.set_position(done as u64)
    })
    .await?;
    bar.finish_and_clear();
    let events = demo::load_engagement(&ingestor).await?;
    let (model, _) = build_embeddings(settings, &pool).await?;
    println!(
        "demo ready in {:.1}s: {} influencers ({} photos, {} styles computed now), {} demo users, {} events accepted, {} duplicates, {} rejected; embedding model v{}",
        started.elapsed().as_secs_f64(),
        photos.influencers,
        photos.photos,
        photos.computed,
        demo::DEMO_USERS.len(),
        events.accepted,
        events.duplicates,
        events.rejected.len(),
        model.version
    );
    Ok(())
}

async fn eval_styles(settings: &Settings, args: &EvalStylesArgs) -> anyhow::Result<()> {
    use stylecast::tools::eval_styles;

    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    let models = models_or_explain(settings).await?;
    let photos_dir = args
        .photos
        .clone()
        .unwrap_or_else(|| settings.onnx.model_dir.join("styles/content_heldout"));
    let photos = eval_styles::heldout_photos(&photos_dir, settings.media).await?;
    let bar = progress_bar(0, "generations");
    bar.set_message("evaluating");
    let started = std::time::Instant::now();
    let scores = eval_styles::evaluate(&pool, &models, &photos, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    print!("{}", eval_styles::table(&scores));
    let (mean, median) = eval_styles::summary(&scores);
    println!(
        "{} styles x {} held-out photos with generator {}: mean style ratio {mean:.3}, median {median:.3} (output/input Gram distance; below 1 = closer to the style) in {:.1}s",
        scores.len(),
        photos.len(),
        models.generator.version,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
