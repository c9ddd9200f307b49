//! The command line: clap's definitions, and the pvesh-style `--key value` parameters that
//! follow an API path, with pvectl's own options picked out from among them wherever they
//! stand (`pvectl get /nodes --output-format json` and `pvectl --output-format json get /nodes`
//! mean the same).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use route_metadata::{Operation, SchemaType};

use crate::error::usage_error;
use crate::output::Format;

/// pvesh for your laptop: the Proxmox VE API from any machine, over proxmox-sdk.
#[derive(Parser, Debug)]
#[command(name = "pvectl", version, about, max_term_width = 100)]
pub struct Cli {
    /// Options valid with every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options valid anywhere on the line.
#[derive(Args, Debug, Default, Clone)]
pub struct Global {
    /// Config file (default: $XDG_CONFIG_HOME/proxmox-sdk/config.yaml).
    #[arg(long, global = true, env = "PROXMOX_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Profile of the config file to use (default: the current one).
    #[arg(long, global = true, env = "PROXMOX_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Run against an in-process mock server (memory store, default seed).
    #[arg(long, global = true)]
    pub mock: bool,
    /// Schema version for validation and --mock: latest, 9.1, 9.0, 8.4.
    #[arg(
        long,
        global = true,
        env = "PROXMOX_SCHEMA_VERSION",
        default_value = "latest"
    )]
    pub schema_version: String,
    /// Print every request as a curl command (secrets redacted) on stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    pub output_format: Option<Format>,
    /// Tables without borders.
    #[arg(long, global = true)]
    pub noborder: bool,
    /// Tables without a header line.
    #[arg(long, global = true)]
    pub noheader: bool,
    /// Render bytes, durations, timestamps and fractions with units.
    #[arg(long, global = true)]
    pub human_readable: bool,
    /// Wait for a worker task to finish (default on a terminal).
    #[arg(long, global = true, overrides_with = "no_wait")]
    pub wait: bool,
    /// Print the task id and return at once.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Stream the task log while waiting.
    #[arg(long, global = true)]
    pub follow: bool,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List child objects on PATH (pvesh ls).
    Ls(ApiArgs),
    /// Call GET on PATH (pvesh get).
    Get(ApiArgs),
    /// Call POST on PATH (pvesh create).
    Create(ApiArgs),
    /// Call PUT on PATH (pvesh set).
    Set(ApiArgs),
    /// Call DELETE on PATH (pvesh delete).
    Delete(ApiArgs),
    /// Print the parameters of PATH and what it returns (pvesh usage).
    Usage(UsageArgs),
    /// Manage connection profiles.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script: bash, zsh, fish or powershell.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: crate::complete::Shell,
    },
}

/// An API path and its parameters.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// API path, e.g. /nodes/pve1/qemu.
    pub path: String,
    /// Parameters as --key value (repeat a key for arrays).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--KEY VALUE"
    )]
    pub params: Vec<String>,
}

/// `usage PATH [--verbose] [--returns] [--command VERB]`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// API path, e.g. /nodes/{node}/qemu or /nodes/pve1/qemu.
    pub path: String,
    /// Every parameter with its type, default and description.
    #[arg(long, short)]
    pub verbose: bool,
    /// Include the schema of the returned data.
    #[arg(long)]
    pub returns: bool,
    /// Only this verb.
    #[arg(long, value_parser = ["get", "set", "create", "delete"])]
    pub command: Option<String>,
}

/// `config add|list|use|remove|show`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Add (or replace) a profile; the first one becomes current.
    Add(Box<AddProfile>),
    /// List the profiles (secrets are never shown).
    List,
    /// Make a profile the current one.
    Use {
        /// Profile name.
        name: String,
    },
    /// Remove a profile.
    Remove {
        /// Profile name.
        name: String,
    },
    /// Show a profile (default: the current one), secrets masked.
    Show {
        /// Profile name.
        name: Option<String>,
    },
}

/// `config add NAME --url URL ...`.
#[derive(Args, Debug)]
pub struct AddProfile {
    /// Profile name.
    pub name: String,
    /// Base URL, e.g. https://pve.example.com:8006.
    #[arg(long)]
    pub url: String,
    /// API token id, user@realm!name.
    #[arg(long)]
    pub token_id: Option<String>,
    /// API token secret; `-` reads it from stdin (keeps it out of the shell history and `ps`).
    #[arg(long)]
    pub token_secret: Option<String>,
    /// User for a password login, user@realm.
    #[arg(long)]
    pub user: Option<String>,
    /// Password; `-` reads it from stdin.
    #[arg(long)]
    pub password: Option<String>,
    /// Shell command that prints the password (e.g. `pass show pve/root`).
    #[arg(long)]
    pub password_command: Option<String>,
    /// SHA-256 fingerprint of the server certificate to pin.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// PEM CA certificate to trust.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Request timeout in seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Make it the current profile.
    #[arg(long = "use")]
    pub make_current: bool,
}

/// Picks pvectl's own options out of the parameters after the path (pvesh accepts them there)
/// and returns the rest.
pub fn take_options(global: &mut Global, params: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut rest = Vec::new();
    let mut iter = params.into_iter();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "--output-format" => {
                let value = match inline {
                    Some(value) => value,
                    None => iter
                        .next()
                        .ok_or_else(|| usage_error("--output-format needs a value"))?,
                };
                let format = <Format as clap::ValueEnum>::from_str(&value, false).map_err(|_| {
                    usage_error(format!(
                        "invalid value '{value}' for --output-format (json, json-pretty, yaml, text, table)"
                    ))
                })?;
                global.output_format = Some(format);
            }
            "--noborder" => global.noborder = true,
            "--noheader" => global.noheader = true,
            "--human-readable" => global.human_readable = true,
            "--wait" => {
                global.wait = true;
                global.no_wait = false;
            }
            "--no-wait" => {
                global.no_wait = true;
                global.wait = false;
            }
            "--follow" => global.follow = true,
            "--debug" => global.debug = true,
            "--mock" => global.mock = true,
            _ => rest.push(arg),
        }
    }
    Ok(rest)
}

/// `--key value`, `--key=value`, `-key value`; a boolean may stand alone (`--full`).
pub fn parse_params(
    operation: Option<&Operation>,
    raw: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut index = 0;
    while index < raw.len() {
        let arg = &raw[index];
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(usage_error(format!(
                "unexpected argument '{arg}': parameters are given as --key value"
            )));
        };
        if stripped.is_empty() {
            return Err(usage_error(format!("unexpected argument '{arg}'")));
        }
        if let Some((key, value)) = stripped.split_once('=') {
            pairs.push((key.to_owned(), value.to_owned()));
            index += 1;
            continue;
        }
        let is_boolean = operation
            .and_then(|operation| operation.parameter(stripped))
            .is_some_and(|schema| schema.kind() == SchemaType::Boolean);
        let next = raw.get(index + 1).filter(|next| !looks_like_option(next));
        match (next, is_boolean) {
            (Some(value), _) => {
                pairs.push((stripped.to_owned(), value.clone()));
                index += 2;
            }
            (None, true) => {
                pairs.push((stripped.to_owned(), "1".to_owned()));
                index += 1;
            }
            (None, false) => {
                return Err(usage_error(format!(
                    "--{stripped} needs a value (write --{stripped}=VALUE for a value that starts with '-')"
                )));
            }
        }
    }
    Ok(pairs)
}

/// `--x` or `-x`, but not a negative number.
fn looks_like_option(arg: &str) -> bool {
    arg.starts_with('-') && arg.len() > 1 && arg[1..].parse::<f64>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn options_anywhere() {
        let mut global = Global::default();
        let rest = take_options(
            &mut global,
            strings(&[
                "--vmid",
                "100",
                "--output-format=yaml",
                "--noborder",
                "--name",
                "x",
            ]),
        )
        .expect("valid");
        assert_eq!(rest, strings(&["--vmid", "100", "--name", "x"]));
        assert_eq!(global.output_format, Some(Format::Yaml));
        assert!(global.noborder);
        assert!(take_options(&mut global, strings(&["--output-format", "xml"])).is_err());
    }

    #[test]
    fn key_value_pairs() {
        let pairs = parse_params(
            None,
            &strings(&["--a", "1", "-b=2", "--c", "-5", "--a", "3"]),
        )
        .expect("valid");
        assert_eq!(
            pairs,
            [("a", "1"), ("b", "2"), ("c", "-5"), ("a", "3")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(parse_params(None, &strings(&["stray"])).is_err());
        assert!(parse_params(None, &strings(&["--a"])).is_err());
    }
}
