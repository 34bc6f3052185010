//! Command-line interface (`stylecast --help`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stylecast",
    version,
    about = "Personalized, influencer-style images from social engagement"
)]
pub struct Cli {
    /// Settings file (TOML) layered over the built-in defaults; env vars still win.
    #[arg(long, global = true, env = "STYLECAST_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve HTTP until SIGINT/SIGTERM.
    Serve,
    /// Create the database if needed and apply migrations.
    Migrate,
    /// Render feed images from the job queue (Redis Stream consumer group) until SIGINT/SIGTERM;
    /// run any number, on any machine.
    Worker(WorkerArgs),
    /// Restyle a photo for a user with the same pipeline as POST /v1/generate, without a server.
    #[command(after_help = "Examples (run by tests/api/docs.rs against the demo data):
  stylecast generate --photo me.jpg --user ana --out ana.png
  stylecast generate --photo me.jpg --user ana --influencer noir_nadia --size 512 --out nadia.jpg
  stylecast generate --photo me.jpg --user ana --mix neon_nova=0.7,ink_iris=0.3 --strength 0.6 --out mix.webp")]
    Generate(GenerateArgs),
    /// Influencer styles.
    Styles {
        #[command(subcommand)]
        command: StylesCommand,
    },
    /// Rebuild every interest vector (ALS over current affinity) and publish a new model version;
    /// or hand the matrix to Spark and publish what it trained (--export, then --import).
    #[command(
        after_help = "Examples (spark/als.py trains between --export and --import; see spark/README.md):
  stylecast embed
  stylecast embed --export matrix"
    )]
    Embed(EmbedArgs),
    /// Train ALS on an interaction file and write top-k recommendations (offline evaluation;
    /// bench/eval_recs.py drives it next to popularity and the `implicit` library).
    EvalRecs(EvalRecsArgs),
    /// Synthetic users, influencers and events at a given scale, through the real ingest path.
    #[command(
        after_help = "Example (a small plan; the defaults are 10,000 users and 100,000 events):
  stylecast seed --users 50 --influencers 5 --events 500 --prefix docs --embed"
    )]
    Seed(SeedArgs),
    /// Load the demo influencers (reference photos from onnx/styles/), demo users with
    /// engagement, and build embeddings, so the demo page at / is alive. Idempotent.
    #[command(after_help = "Example:
  stylecast demo")]
    Demo(DemoArgs),
    /// For each influencer with a style: Gram-distance ratio of output vs input on held-out
    /// photos (the model card's metric; below 1 = moved towards the style).
    EvalStyles(EvalStylesArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// Write the interaction matrix, id maps and ALS settings as Parquet into DIR for
    /// spark/als.py, instead of training here.
    #[arg(long, value_name = "DIR", conflicts_with = "import")]
    pub export: Option<PathBuf>,
    /// Publish the factors spark/als.py wrote into DIR (after --export DIR) as a new model
    /// version, checked against the export.
    #[arg(long, value_name = "DIR")]
    pub import: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Jobs rendered at once (default: feed.worker_concurrency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Consumer name in the group (default: worker-<host>-<pid>); must be unique.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (only its salted hash is stored).
    #[command(after_help = "Example (stdout is only the key):
  KEY=$(stylecast keys create --name feed --scopes ingest,read,generate)")]
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: ingest, read, generate, admin.
        #[arg(long, default_value = "read")]
        scopes: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: uuid::Uuid },
}

#[derive(Debug, clap::Args)]
pub struct EvalRecsArgs {
    /// TSV of `user_index<TAB>item_index<TAB>affinity` rows (0-based indices).
    #[arg(long)]
    pub train: PathBuf,
    #[arg(long)]
    pub users: usize,
    #[arg(long)]
    pub items: usize,
    /// Recommendations per user, excluding items in the training file.
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Where to write `user_index<TAB>item,item,...` lines.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub als: AlsArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AlsArgs {
    #[arg(long, default_value_t = 64)]
    pub factors: usize,
    #[arg(long, default_value_t = 0.05)]
    pub regularization: f32,
    #[arg(long, default_value_t = 10.0)]
    pub alpha: f32,
    #[arg(long, default_value_t = 15)]
    pub iterations: usize,
    #[arg(long, default_value_t = 3)]
    pub cg_steps: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl From<&AlsArgs> for crate::interest::als::AlsParams {
    fn from(args: &AlsArgs) -> Self {
        Self {
            factors: args.factors,
            regularization: args.regularization,
            alpha: args.alpha,
            iterations: args.iterations,
            cg_steps: args.cg_steps,
            seed: args.seed,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum StylesCommand {
    /// Recompute every influencer's style from their stored photos (after a model change).
    Rebuild,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub photo: PathBuf,
    #[arg(long)]
    pub user: String,
    /// One influencer's style.
    #[arg(long, conflicts_with = "mix")]
    pub influencer: Option<String>,
    /// Explicit weights, e.g. neon_nova=0.7,ink_iris=0.3.
    #[arg(long)]
    pub mix: Option<String>,
    #[arg(long, default_value_t = 1.0)]
    pub strength: f32,
    /// Longest side of the output.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    #[arg(long, default_value_t = 200)]
    pub influencers: usize,
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per ingest batch (at most the ingest limit, 10,000 by default).
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Random seed; the same seed and sizes produce the same event ids (a rerun is all duplicates).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Prefix of every generated id.
    #[arg(long, default_value = "seed")]
    pub prefix: String,
    /// Spread events over this many days before now.
    #[arg(long, default_value_t = 60)]
    pub days: i64,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Build embeddings afterwards (like `stylecast embed`).
    #[arg(long)]
    pub embed: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The demo styles directory: influencers.json and the photos it lists
    /// [default: styles/ in the model directory, onnx/styles in a checkout].
    #[arg(long)]
    pub styles: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct EvalStylesArgs {
    /// Held-out photos (never used as style references)
    /// [default: styles/content_heldout in the model directory].
    #[arg(long)]
    pub photos: Option<PathBuf>,
}
