//! `cargo xtask`: the project's developer commands.
//!
//! Run with:
//!
//! ```text
//! cargo xtask codegen           # regenerate generated/ and crates/shared-types/src/generated/
//! cargo xtask codegen --check   # fail when anything generated is stale (CI)
//! ```
//!
//! Layout:
//! - `codegen`: schema -> OpenAPI, route metadata, model index, Rust models.

mod codegen;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Developer commands of the proxmox-sdk workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Regenerate every artifact from schemas/pve (or check that they are fresh).
    Codegen {
        /// Compare with the files on disk instead of writing; fail when any is stale.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Codegen { check } => codegen::run(&codegen::workspace_root(), check),
    }
}
