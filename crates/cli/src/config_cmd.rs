//! `pvectl config add|list|use|remove|show`: the profiles of the SDK's config file
//! (`proxmox_sdk::profile`). The file is written 0600; secrets are never printed (`show` masks
//! them, `list` leaves them out).

use std::io::BufRead;
use std::path::Path;

use proxmox_sdk::profile::{Config, Profile};
use serde_json::{Value, json};

use crate::cli::{AddProfile, ConfigCommand};
use crate::connect::warn_if_shared;
use crate::error::usage_error;
use crate::output::{self, Format, TableOptions};

const MASK: &str = "********";

/// Runs one `config` subcommand against the file at `path`.
pub fn run(
    command: ConfigCommand,
    path: &Path,
    format: Format,
    table: TableOptions,
) -> anyhow::Result<()> {
    if path.exists() {
        warn_if_shared(path);
    }
    let mut config = Config::load_or_default(path)?;
    match command {
        ConfigCommand::Add(add) => {
            let name = add.name.clone();
            let make_current = add.make_current || config.current.is_none();
            let profile = build_profile(*add)?;
            if profile.password_command.is_none() {
                profile
                    .builder()
                    .and_then(|builder| builder.build())
                    .map_err(|error| usage_error(error.to_string()))?;
            }
            config.profiles.insert(name.clone(), profile);
            if make_current {
                config.current = Some(name.clone());
            }
            config.save(path)?;
            eprintln!("profile '{name}' saved to {}", path.display());
        }
        ConfigCommand::List => {
            let rows: Vec<Value> = config
                .profiles
                .iter()
                .map(|(name, profile)| {
                    json!({
                        "current": u8::from(config.current.as_deref() == Some(name.as_str())),
                        "name": name,
                        "url": profile.url,
                        "auth": auth_summary(profile),
                    })
                })
                .collect();
            let schema = json!({"type": "array", "items": {"type": "object",
                "required": ["name"],
                "properties": {"name": {}, "current": {"type": "boolean"}, "url": {}, "auth": {}}}});
            print!(
                "{}",
                output::render(&Value::Array(rows), Some(&schema), format, table)
            );
        }
        ConfigCommand::Use { name } => {
            known(&config, &name, path)?;
            config.current = Some(name.clone());
            config.save(path)?;
            eprintln!("current profile: {name}");
        }
        ConfigCommand::Remove { name } => {
            known(&config, &name, path)?;
            config.profiles.remove(&name);
            if config.current.as_deref() == Some(name.as_str()) {
                config.current = None;
            }
            config.save(path)?;
            eprintln!("profile '{name}' removed");
        }
        ConfigCommand::Show { name } => {
            let name = match name {
                Some(name) => name,
                None => config
                    .selected_name(None)
                    .map_err(|error| usage_error(error.to_string()))?,
            };
            let profile = known(&config, &name, path)?;
            let mut shown = serde_json::to_value(profile)?;
            if let Some(map) = shown.as_object_mut() {
                for secret in ["token_secret", "password"] {
                    if let Some(value) = map.get_mut(secret) {
                        *value = Value::String(MASK.to_owned());
                    }
                }
                map.insert("name".to_owned(), Value::String(name.clone()));
            }
            print!("{}", output::render(&shown, None, format, table));
        }
    }
    Ok(())
}

fn known<'a>(config: &'a Config, name: &str, path: &Path) -> anyhow::Result<&'a Profile> {
    config.profiles.get(name).ok_or_else(|| {
        let suggestions = crate::schema::closest(name, config.profiles.keys().map(String::as_str));
        let hint = if suggestions.is_empty() {
            String::new()
        } else {
            format!(
                " (did you mean {}?)",
                crate::schema::quote_list(&suggestions)
            )
        };
        usage_error(format!(
            "no profile named '{name}' in {}{hint}",
            path.display()
        ))
    })
}

fn build_profile(add: AddProfile) -> anyhow::Result<Profile> {
    let token_secret = add.token_secret.map(read_if_dash).transpose()?;
    let password = add.password.map(read_if_dash).transpose()?;
    if add.token_id.is_some() != token_secret.is_some() {
        return Err(usage_error("--token-id and --token-secret go together"));
    }
    if add.token_id.is_some() && add.user.is_some() {
        return Err(usage_error(
            "give either a token (--token-id) or a user (--user), not both",
        ));
    }
    if add.user.is_some() && password.is_none() && add.password_command.is_none() {
        return Err(usage_error("--user needs --password or --password-command"));
    }
    Ok(Profile {
        url: add.url,
        token_id: add.token_id,
        token_secret,
        user: add.user,
        password,
        password_command: add.password_command,
        fingerprint: add.fingerprint,
        ca_file: add.ca_file,
        verify_tls: add.insecure.then_some(false),
        timeout: add.timeout,
    })
}

/// `-` reads one line from stdin.
fn read_if_dash(value: String) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(usage_error("nothing on stdin"));
    }
    Ok(line)
}

fn auth_summary(profile: &Profile) -> String {
    match (&profile.token_id, &profile.user) {
        (Some(id), _) => format!("token {id}"),
        (None, Some(user)) if profile.password_command.is_some() => {
            format!("password of {user} (command)")
        }
        (None, Some(user)) => format!("password of {user}"),
        (None, None) => "none".to_owned(),
    }
}
