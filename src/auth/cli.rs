//! `virserver keys create|list|revoke`: API keys, straight against the database the
//! server uses (the same `--data-dir` / `--database` as `serve`), so the first admin
//! key is made before any server runs and no default password exists.

use anyhow::Context;

use super::{Keys, Role};
use crate::config::{Config, ConfigOverrides};
use crate::store::Store;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; its token is printed once, on the last line of standard output.
    Create {
        /// The key's name: the user that owns what it creates (letters, digits, - _ .).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        #[command(flatten)]
        config: ConfigOverrides,
    },
    /// Every key with its role and whether it is revoked (never a token).
    List {
        #[command(flatten)]
        config: ConfigOverrides,
    },
    /// Revoke a key: its token stops working at once; its name stays taken.
    Revoke {
        name: String,
        #[command(flatten)]
        config: ConfigOverrides,
    },
}

async fn keys(overrides: &ConfigOverrides) -> anyhow::Result<Keys> {
    let mut config = Config::load_unchecked(overrides)?;
    config.prepare_data_dir()?;
    let store = Store::connect(&config.database_url())
        .await
        .context("opening the database")?;
    Ok(Keys::new(store, super::AuthMode::Required))
}

/// Runs the command; returns the exit status.
pub async fn run(command: KeysCommand) -> anyhow::Result<u8> {
    match command {
        KeysCommand::Create { name, role, config } => {
            let (key, token) = keys(&config).await?.create(&name, role).await?;
            println!(
                "created the {} key '{}'; its token, shown only now:",
                key.role.as_str(),
                key.name
            );
            println!("{token}");
            Ok(0)
        }
        KeysCommand::List { config } => {
            let all = keys(&config).await?.list().await?;
            if all.is_empty() {
                println!("no keys (create one: virserver keys create --name NAME --role admin)");
            }
            for key in all {
                println!(
                    "{:<24} {:<9} created {}{}",
                    key.name,
                    key.role.as_str(),
                    key.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    key.revoked_at.map_or(String::new(), |at| format!(
                        ", revoked {}",
                        at.format("%Y-%m-%d %H:%M:%S UTC")
                    ))
                );
            }
            Ok(0)
        }
        KeysCommand::Revoke { name, config } => {
            if keys(&config).await?.revoke(&name).await? {
                println!("revoked the key '{name}'");
                Ok(0)
            } else {
                eprintln!("virserver: no live key named '{name}'");
                Ok(1)
            }
        }
    }
}
