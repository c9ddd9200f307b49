//! Where requests go: a profile of the config file with `PROXMOX_API_*` variables on top, or
//! (`--mock`) an in-process mock server; and the one function every request passes through,
//! which prints it as a curl command under `--debug`, secrets redacted.

use std::path::{Path, PathBuf};

use anyhow::Context;
use proxmox_sdk::Client;
use proxmox_sdk::profile::{Config, Profile};
use proxmox_sdk::reqwest::Method;
use serde_json::{Map, Value};

use crate::error::usage_error;

/// How the client authenticates, for the `--debug` output.
#[derive(Clone, Debug)]
enum AuthShown {
    None,
    Token(String),
    Ticket,
}

/// A connected client and what `--debug` needs to describe its requests.
pub struct Session {
    /// The SDK client.
    pub client: Client,
    auth: AuthShown,
    debug: bool,
    /// Keeps the in-process mock running for `--mock`.
    mock: Option<mock_server::MockServerHandle>,
}

/// Which connection the command line asks for.
pub struct Target<'a> {
    /// `--mock`.
    pub mock: bool,
    /// The resolved schema tag (for `--mock`).
    pub tag: &'a str,
    /// `--config` (or `PROXMOX_CONFIG`).
    pub config: Option<&'a Path>,
    /// `--profile` (or `PROXMOX_PROFILE`).
    pub profile: Option<&'a str>,
    /// `--debug`.
    pub debug: bool,
}

impl Session {
    /// Connects as `target` says.
    pub async fn open(target: Target<'_>) -> anyhow::Result<Session> {
        if target.mock {
            let server = mock_server::MockServer::builder()
                .schema(target.tag)
                .store(mock_server::Store::Memory)
                .auth(false)
                .listen(loopback())
                .http_listen(loopback())
                .spawn()
                .await
                .context("starting the in-process mock server")?;
            let client = Client::builder()
                .base_url(server.base_url())
                .build()
                .context("building the client")?;
            return Ok(Session {
                client,
                auth: AuthShown::None,
                debug: target.debug,
                mock: Some(server),
            });
        }
        let profile = select_profile(target.config, target.profile)?;
        let auth = match (&profile.token_id, &profile.user) {
            (Some(id), _) => AuthShown::Token(id.clone()),
            (None, Some(_)) => AuthShown::Ticket,
            (None, None) => AuthShown::None,
        };
        let client = profile
            .builder()
            .context("reading the profile")?
            .build()
            .context("building the client")?;
        Ok(Session {
            client,
            auth,
            debug: target.debug,
            mock: None,
        })
    }

    /// Sends one request; `params` go to the query (GET/DELETE) or the JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        params: &Map<String, Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.client.request(method.clone(), path);
        if !params.is_empty() {
            request = request.params(params);
        }
        if self.debug {
            let built = request.build()?;
            eprintln!("{}", self.curl(&built));
        }
        let data: Value = request.send().await?;
        Ok(data)
    }

    /// Stops the in-process mock, if any.
    pub async fn close(self) {
        if let Some(server) = self.mock {
            let _ = server.shutdown().await;
        }
    }

    /// The request as a curl command; credentials and secret-looking parameters redacted.
    fn curl(&self, request: &proxmox_sdk::reqwest::Request) -> String {
        let mut url = request.url().clone();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if is_secret_key(&key) {
                    "<redacted>".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        let mut parts = vec!["curl".to_owned()];
        if url.scheme() == "https" {
            parts.push("-k".to_owned());
        }
        parts.push(format!("-X {}", request.method()));
        match &self.auth {
            AuthShown::None => {}
            AuthShown::Token(id) => parts.push(format!(
                "-H {}",
                shell_quote(&format!("Authorization: PVEAPIToken={id}=<redacted>"))
            )),
            AuthShown::Ticket => {
                parts.push("-b 'PVEAuthCookie=<redacted>'".to_owned());
                if request.method() != Method::GET {
                    parts.push("-H 'CSRFPreventionToken: <redacted>'".to_owned());
                }
            }
        }
        if let Some(body) = request.body().and_then(|body| body.as_bytes()) {
            let shown = match serde_json::from_slice::<Value>(body) {
                Ok(mut value) => {
                    redact(&mut value);
                    value.to_string()
                }
                Err(_) => "<binary body>".to_owned(),
            };
            parts.push("-H 'Content-Type: application/json'".to_owned());
            parts.push(format!("--data {}", shell_quote(&shown)));
        }
        parts.push(shell_quote(url.as_str()));
        parts.join(" ")
    }
}

/// Reads the config file and picks the profile, then applies `PROXMOX_API_*` on top. Without a
/// config file (or without profiles), `PROXMOX_API_URL` and friends alone are enough.
fn select_profile(config: Option<&Path>, name: Option<&str>) -> anyhow::Result<Profile> {
    let path = config_path(config)?;
    let config = Config::load_or_default(&path)?;
    if path.exists() {
        warn_if_shared(&path);
    }
    let env_url = std::env::var("PROXMOX_API_URL").is_ok_and(|url| !url.trim().is_empty());
    let mut profile = match config.selected_name(name) {
        Ok(selected) => config
            .profile(&selected)
            .map_err(|_| {
                let names: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
                let suggestions = crate::schema::closest(&selected, names);
                let hint = if suggestions.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (did you mean {}?)",
                        crate::schema::quote_list(&suggestions)
                    )
                };
                usage_error(format!(
                    "no profile named '{selected}' in {}{hint}",
                    path.display()
                ))
            })?
            .clone(),
        Err(_) if env_url && name.is_none() => Profile::default(),
        Err(_) if config.profiles.is_empty() => Profile::default(),
        Err(error) => return Err(usage_error(error.to_string())),
    };
    profile
        .apply_env()
        .map_err(|error| usage_error(error.to_string()))?;
    if profile.url.trim().is_empty() {
        return Err(usage_error(
            "no server: add a profile with `pvectl config add`, set PROXMOX_API_URL, or use --mock",
        ));
    }
    Ok(profile)
}

/// `--config`, else the SDK's default path.
pub fn config_path(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    match config {
        Some(path) => Ok(path.to_owned()),
        None => Config::default_path().ok_or_else(|| {
            usage_error("no config path: set HOME, XDG_CONFIG_HOME or use --config")
        }),
    }
}

/// Warns on stderr when the config file is open to its group or the world.
pub fn warn_if_shared(path: &Path) {
    if !Config::is_private(path) {
        eprintln!(
            "warning: {} is readable by other users and holds secrets; run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

fn loopback() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Whether a parameter name looks like it carries a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "ticket", "csrf"]
        .iter()
        .any(|needle| key.contains(needle))
        || key.ends_with("key")
}

fn redact(value: &mut Value) {
    if let Value::Object(map) = value {
        for (key, item) in map.iter_mut() {
            if is_secret_key(key) {
                *item = Value::String("<redacted>".to_owned());
            } else {
                redact(item);
            }
        }
    }
}

/// Quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for key in [
            "password",
            "cipassword",
            "token_secret",
            "sshkey",
            "encryption-key",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["memory", "name", "keyboard", "sshkeys-count-keys"] {
            assert!(!is_secret_key(key), "{key}");
        }
        let mut body = serde_json::json!({"userid": "a@pve", "password": "hunter2"});
        redact(&mut body);
        assert_eq!(body["password"], "<redacted>");
    }
}
