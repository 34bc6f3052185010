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
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (only its salted hash is stored).
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
