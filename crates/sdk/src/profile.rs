//! Connection profiles: the YAML config file shared with `pvectl` (feature `profiles`).
//!
//! The file lives at `$PROXMOX_CONFIG`, else `$XDG_CONFIG_HOME/proxmox-sdk/config.yaml`, else
//! `~/.config/proxmox-sdk/config.yaml`, and looks like this:
//!
//! ```yaml
//! current: lab
//! profiles:
//!   lab:
//!     url: https://pve.example.com:8006
//!     token_id: root@pam!automation
//!     token_secret: 5f2a0000-aaaa-bbbb-cccc-123456789abc
//!     fingerprint: AB:CD:...
//!   home:
//!     url: https://192.168.1.2:8006
//!     user: root@pam
//!     password_command: pass show pve/root
//!     verify_tls: false
//! ```
//!
//! [`Client::from_profile`] connects with a named profile, [`Client::from_config`] with the one
//! `$PROXMOX_PROFILE` names, else `current`, else the only one. Both apply the `PROXMOX_API_*`
//! variables of [`ClientBuilder::from_env`] on top, so a variable always wins over the file.
//!
//! The file holds secrets: [`Config::save`] writes it readable by its owner only (0600, through
//! a temporary file and a rename), and [`Config::is_private`] tells callers whether an existing
//! file is open to its group or the world, so they can warn. `Debug` of a [`Profile`] masks the
//! token secret and the password.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientBuilder};
use crate::error::{Error, Result};

/// The whole config file: profiles by name and the one in use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One connection: where, who, and how to trust the server.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Base URL, e.g. `https://pve.example.com:8006`.
    pub url: String,
    /// API token id, `user@realm!name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// API token secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// User for a password login, `user@realm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password for a password login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A shell command whose first line of output is the password (`pass show pve/root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    /// SHA-256 fingerprint of the server certificate to pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// A PEM CA certificate to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// `false` turns certificate checks off (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_tls: Option<bool>,
    /// Request timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("Profile")
            .field("url", &self.url)
            .field("token_id", &self.token_id)
            .field("token_secret", &mask(&self.token_secret))
            .field("user", &self.user)
            .field("password", &mask(&self.password))
            .field("password_command", &self.password_command)
            .field("fingerprint", &self.fingerprint)
            .field("ca_file", &self.ca_file)
            .field("verify_tls", &self.verify_tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Config {
    /// Where the file is: `$PROXMOX_CONFIG`, else `$XDG_CONFIG_HOME/proxmox-sdk/config.yaml`,
    /// else `$HOME/.config/proxmox-sdk/config.yaml`; `None` without any of these variables.
    pub fn default_path() -> Option<PathBuf> {
        default_path_from(|name| std::env::var_os(name))
    }

    /// Reads and parses the file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            Error::config_with(format!("could not read {}", path.display()), error)
        })?;
        Self::parse(&text).map_err(|error| {
            Error::config_with(format!("could not parse {}", path.display()), error)
        })
    }

    /// Reads the file, or returns an empty config when it does not exist.
    pub fn load_or_default(path: &Path) -> Result<Config> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Config::default())
        }
    }

    /// Parses the YAML text of a config file (an empty text is an empty config).
    pub fn parse(text: &str) -> std::result::Result<Config, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text)
    }

    /// Writes the file readable and writable by its owner only (0600 on Unix), creating its
    /// directory; the old file is replaced atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_yaml::to_string(self)
            .map_err(|error| Error::config_with("could not encode the config", error))?;
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| {
                Error::config_with(format!("could not create {}", dir.display()), error)
            })?;
        }
        let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
        write_private(&temporary, text.as_bytes()).map_err(|error| {
            Error::config_with(format!("could not write {}", temporary.display()), error)
        })?;
        std::fs::rename(&temporary, path).map_err(|error| {
            let _ = std::fs::remove_file(&temporary);
            Error::config_with(format!("could not replace {}", path.display()), error)
        })
    }

    /// Whether the file at `path` is closed to its group and the world (always true off Unix and
    /// for a missing file).
    pub fn is_private(path: &Path) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(metadata) = std::fs::metadata(path) {
                return metadata.permissions().mode() & 0o077 == 0;
            }
        }
        let _ = path;
        true
    }

    /// The name of the profile to use: `name`, else `$PROXMOX_PROFILE`, else `current`, else the
    /// only profile.
    pub fn selected_name(&self, name: Option<&str>) -> Result<String> {
        let from_env = std::env::var("PROXMOX_PROFILE")
            .ok()
            .filter(|value| !value.is_empty());
        if let Some(name) = name
            .map(str::to_owned)
            .or(from_env)
            .or(self.current.clone())
        {
            return Ok(name);
        }
        let mut names = self.profiles.keys();
        match (names.next(), names.next()) {
            (Some(only), None) => Ok(only.clone()),
            (None, _) => Err(Error::config(
                "no profile configured: add one with `pvectl config add` or set PROXMOX_API_URL",
            )),
            (Some(_), Some(_)) => Err(Error::config(
                "several profiles and none is current: name one or set `current`",
            )),
        }
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Result<&Profile> {
        self.profiles
            .get(name)
            .ok_or_else(|| Error::config(format!("no profile named {name:?}")))
    }
}

impl Profile {
    /// Replaces fields with the `PROXMOX_API_*` variables that are set (see
    /// [`ClientBuilder::from_env`]); credentials from the environment replace both of the
    /// profile's.
    pub fn apply_env(&mut self) -> Result<()> {
        self.apply_lookup(|name| std::env::var(name).ok())
    }

    /// [`Profile::apply_env`] with a custom variable lookup.
    pub fn apply_lookup(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        let var = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        if let Some(url) = var("PROXMOX_API_URL") {
            self.url = url;
        }
        let token = (var("PROXMOX_API_TOKEN_ID"), var("PROXMOX_API_TOKEN_SECRET"));
        let login = (var("PROXMOX_API_USER"), lookup("PROXMOX_API_PASSWORD"));
        if let (Some(id), Some(secret)) = token {
            self.token_id = Some(id);
            self.token_secret = Some(secret);
            self.user = None;
            self.password = None;
            self.password_command = None;
        } else if let (Some(user), Some(password)) = login {
            self.token_id = None;
            self.token_secret = None;
            self.user = Some(user);
            self.password = Some(password);
            self.password_command = None;
        }
        if let Some(verify) = var("PROXMOX_API_VERIFY_TLS") {
            self.verify_tls = Some(!matches!(
                verify.to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            ));
        }
        if let Some(ca_file) = var("PROXMOX_API_CA_FILE") {
            self.ca_file = Some(PathBuf::from(ca_file));
        }
        if let Some(fingerprint) = var("PROXMOX_API_FINGERPRINT") {
            self.fingerprint = Some(fingerprint);
        }
        if let Some(timeout) = var("PROXMOX_API_TIMEOUT") {
            let parsed = crate::env::parse_duration("PROXMOX_API_TIMEOUT", &timeout)?;
            self.timeout = Some(parsed.as_secs_f64());
        }
        Ok(())
    }

    /// A builder configured from this profile (running `password_command` if there is one).
    pub fn builder(&self) -> Result<ClientBuilder> {
        if self.url.trim().is_empty() {
            return Err(Error::config("the profile has no url"));
        }
        let mut builder = ClientBuilder::default().base_url(self.url.trim());
        builder = match (&self.token_id, &self.token_secret, &self.user) {
            (Some(id), Some(secret), _) => builder.token(id, secret),
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(Error::config(
                    "the profile needs both token_id and token_secret",
                ));
            }
            (None, None, Some(user)) => {
                let password = match (&self.password, &self.password_command) {
                    (Some(password), _) => password.clone(),
                    (None, Some(command)) => run_password_command(command)?,
                    (None, None) => {
                        return Err(Error::config(
                            "the profile names a user but no password or password_command",
                        ));
                    }
                };
                builder.password(user, password)
            }
            (None, None, None) => builder,
        };
        if let Some(fingerprint) = &self.fingerprint {
            builder = builder.fingerprint(fingerprint);
        }
        if let Some(ca_file) = &self.ca_file {
            let pem = std::fs::read(ca_file).map_err(|error| {
                Error::config_with(
                    format!("could not read the CA file {}", ca_file.display()),
                    error,
                )
            })?;
            builder = builder.ca_cert(pem);
        }
        if self.verify_tls == Some(false) {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(seconds) = self.timeout {
            let timeout = Duration::try_from_secs_f64(seconds)
                .map_err(|error| Error::config_with("the profile's timeout is invalid", error))?;
            builder = builder.timeout(timeout);
        }
        Ok(builder)
    }
}

impl ClientBuilder {
    /// A builder from the profile `name` of the default config file, with the `PROXMOX_API_*`
    /// variables applied on top; `None` picks the profile as [`Config::selected_name`] does.
    pub fn from_profile(name: Option<&str>) -> Result<ClientBuilder> {
        let path = Config::default_path()
            .ok_or_else(|| Error::config("no config path: set HOME or PROXMOX_CONFIG"))?;
        let config = Config::load(&path)?;
        let name = config.selected_name(name)?;
        let mut profile = config.profile(&name)?.clone();
        profile.apply_env()?;
        profile.builder()
    }
}

impl Client {
    /// A client from the profile `name` of the default config file (see [`crate::profile`]).
    pub fn from_profile(name: &str) -> Result<Client> {
        ClientBuilder::from_profile(Some(name))?.build()
    }

    /// A client from the selected profile of the default config file: `$PROXMOX_PROFILE`, else
    /// `current`, else the only one.
    pub fn from_config() -> Result<Client> {
        ClientBuilder::from_profile(None)?.build()
    }
}

fn default_path_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let non_empty = |name: &str| var(name).filter(|value| !value.is_empty());
    if let Some(path) = non_empty("PROXMOX_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = non_empty("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("proxmox-sdk").join("config.yaml"))
}

/// Runs `command` with `sh -c` and returns the first line of its output.
fn run_password_command(command: &str) -> Result<String> {
    let output = std::process::Command::new("sh")
        .args(["-c", command])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|error| Error::config_with("could not run the password_command", error))?;
    if !output.status.success() {
        return Err(Error::config(format!(
            "the password_command failed ({})",
            output.status
        )));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|error| Error::config_with("the password_command printed no text", error))?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        return Err(Error::config("the password_command printed nothing"));
    }
    Ok(password)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use super::*;

    #[test]
    fn paths() {
        let vars = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, OsString> = pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), OsString::from(value)))
                .collect();
            default_path_from(move |name| map.get(name).cloned())
        };
        assert_eq!(
            vars(&[("HOME", "/home/a")]),
            Some(PathBuf::from("/home/a/.config/proxmox-sdk/config.yaml"))
        );
        assert_eq!(
            vars(&[("HOME", "/home/a"), ("XDG_CONFIG_HOME", "/x")]),
            Some(PathBuf::from("/x/proxmox-sdk/config.yaml"))
        );
        assert_eq!(
            vars(&[("PROXMOX_CONFIG", "/c.yaml"), ("HOME", "/home/a")]),
            Some(PathBuf::from("/c.yaml"))
        );
        assert_eq!(vars(&[]), None);
    }

    #[test]
    fn env_wins_and_debug_masks() {
        let mut profile = Profile {
            url: "https://a:8006".to_owned(),
            user: Some("root@pam".to_owned()),
            password: Some("hunter2".to_owned()),
            ..Profile::default()
        };
        let vars: HashMap<&str, &str> = [
            ("PROXMOX_API_URL", "https://b:8006"),
            ("PROXMOX_API_TOKEN_ID", "root@pam!ci"),
            ("PROXMOX_API_TOKEN_SECRET", "s3cret"),
        ]
        .into_iter()
        .collect();
        profile
            .apply_lookup(|name| vars.get(name).map(|value| (*value).to_owned()))
            .expect("valid variables");
        assert_eq!(profile.url, "https://b:8006");
        assert_eq!(profile.password, None);
        let printed = format!("{profile:?}");
        assert!(
            !printed.contains("s3cret") && printed.contains("<redacted>"),
            "{printed}"
        );
        assert!(profile.builder().is_ok());
    }

    #[test]
    fn save_is_private_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("sdk-profile-{}", std::process::id()));
        let path = dir.join("nested").join("config.yaml");
        let mut config = Config::default();
        config.profiles.insert(
            "lab".to_owned(),
            Profile {
                url: "https://pve:8006".to_owned(),
                token_id: Some("root@pam!x".to_owned()),
                token_secret: Some("y".to_owned()),
                ..Profile::default()
            },
        );
        config.current = Some("lab".to_owned());
        config.save(&path).expect("saved");
        assert!(Config::is_private(&path));
        assert_eq!(Config::load(&path).expect("loaded"), config);
        assert_eq!(config.selected_name(Some("lab")).expect("named"), "lab");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files() {
        assert!(Config::parse("profiles: [").is_err());
        assert!(Config::parse("unknown: 1").is_err());
        assert_eq!(Config::parse("").expect("empty"), Config::default());
        let profile = Profile {
            url: "https://a".to_owned(),
            token_id: Some("x".to_owned()),
            ..Profile::default()
        };
        assert!(profile.builder().is_err());
    }
}
