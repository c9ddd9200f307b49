//! Configuration from `PROXMOX_API_*` environment variables; see [`ClientBuilder::from_env`].

use std::time::Duration;

use crate::client::ClientBuilder;
use crate::error::{Error, Result};

impl ClientBuilder {
    /// A builder configured from `PROXMOX_API_*` environment variables; further settings can be
    /// chained before `build`.
    ///
    /// It reads these variables and no others (empty counts as unset):
    ///
    /// | variable | meaning |
    /// | --- | --- |
    /// | `PROXMOX_API_URL` | base URL, e.g. `https://pve:8006` (required) |
    /// | `PROXMOX_API_TOKEN_ID`, `PROXMOX_API_TOKEN_SECRET` | API token (wins over a password) |
    /// | `PROXMOX_API_USER`, `PROXMOX_API_PASSWORD` | password login |
    /// | `PROXMOX_API_VERIFY_TLS` | `0`/`false`/`no`/`off` disables certificate checks (default on) |
    /// | `PROXMOX_API_CA_FILE` | path of a PEM CA certificate to trust |
    /// | `PROXMOX_API_FINGERPRINT` | SHA-256 fingerprint to pin |
    /// | `PROXMOX_API_TIMEOUT` | request timeout: seconds (`30`, `2.5`) or `500ms`, `10s`, `2m` |
    /// | `PROXMOX_API_RETRIES` | retries of idempotent requests |
    /// | `PROXMOX_API_RETRY_BACKOFF` | base retry delay, same format as the timeout |
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ClientBuilder::from_env`] with a custom variable lookup, for tests.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let url =
            var("PROXMOX_API_URL").ok_or_else(|| Error::config("PROXMOX_API_URL is not set"))?;
        let mut builder = ClientBuilder::default().base_url(url);

        builder = match (
            var("PROXMOX_API_TOKEN_ID"),
            var("PROXMOX_API_TOKEN_SECRET"),
            var("PROXMOX_API_USER"),
            lookup("PROXMOX_API_PASSWORD").filter(|password| !password.is_empty()),
        ) {
            (Some(id), Some(secret), _, _) => builder.token(id, secret),
            (Some(_), None, _, _) | (None, Some(_), _, _) => {
                return Err(Error::config(
                    "set both PROXMOX_API_TOKEN_ID and PROXMOX_API_TOKEN_SECRET",
                ));
            }
            (None, None, Some(user), Some(password)) => builder.password(user, password),
            (None, None, Some(_), None) | (None, None, None, Some(_)) => {
                return Err(Error::config(
                    "set both PROXMOX_API_USER and PROXMOX_API_PASSWORD",
                ));
            }
            (None, None, None, None) => {
                return Err(Error::config(
                    "no credentials: set PROXMOX_API_TOKEN_ID and PROXMOX_API_TOKEN_SECRET, \
                     or PROXMOX_API_USER and PROXMOX_API_PASSWORD",
                ));
            }
        };

        if let Some(verify) = var("PROXMOX_API_VERIFY_TLS") {
            builder = builder
                .danger_accept_invalid_certs(!parse_bool("PROXMOX_API_VERIFY_TLS", &verify)?);
        }
        if let Some(ca_file) = var("PROXMOX_API_CA_FILE") {
            let pem = std::fs::read(&ca_file).map_err(|error| {
                Error::config_with(
                    format!("could not read PROXMOX_API_CA_FILE {ca_file:?}"),
                    error,
                )
            })?;
            builder = builder.ca_cert(pem);
        }
        if let Some(fingerprint) = var("PROXMOX_API_FINGERPRINT") {
            builder = builder.fingerprint(fingerprint);
        }
        if let Some(timeout) = var("PROXMOX_API_TIMEOUT") {
            builder = builder.timeout(parse_duration("PROXMOX_API_TIMEOUT", &timeout)?);
        }
        if let Some(retries) = var("PROXMOX_API_RETRIES") {
            let retries = retries.parse::<u32>().map_err(|error| {
                Error::config_with(
                    format!("PROXMOX_API_RETRIES must be a whole number, not {retries:?}"),
                    error,
                )
            })?;
            builder = builder.max_retries(retries);
        }
        if let Some(backoff) = var("PROXMOX_API_RETRY_BACKOFF") {
            builder = builder.retry_backoff(parse_duration("PROXMOX_API_RETRY_BACKOFF", &backoff)?);
        }
        Ok(builder)
    }
}

/// Parses `1`/`true`/`yes`/`on` and `0`/`false`/`no`/`off`, any case.
fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(format!(
            "{name} must be true or false, not {value:?}"
        ))),
    }
}

/// Parses seconds (`30`, `2.5`) or a number with a unit (`500ms`, `10s`, `2m`).
pub(crate) fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    let invalid = || {
        Error::config(format!(
            "{name} must be a duration such as 30, 2.5, 500ms, 10s or 2m, not {value:?}"
        ))
    };
    let (number, seconds_per_unit) = if let Some(number) = value.strip_suffix("ms") {
        (number, 0.001)
    } else if let Some(number) = value.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = value.strip_suffix('m') {
        (number, 60.0)
    } else {
        (value, 1.0)
    };
    let amount: f64 = number.trim().parse().map_err(|_| invalid())?;
    Duration::try_from_secs_f64(amount * seconds_per_unit).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn builder_from(vars: &[(&str, &str)]) -> Result<ClientBuilder> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ClientBuilder::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn token_from_env() {
        let builder = builder_from(&[
            ("PROXMOX_API_URL", "https://pve:8006"),
            ("PROXMOX_API_TOKEN_ID", "root@pam!ci"),
            ("PROXMOX_API_TOKEN_SECRET", "5f2a-secret"),
            ("PROXMOX_API_USER", "ignored@pam"),
            ("PROXMOX_API_TIMEOUT", "2.5"),
            ("PROXMOX_API_RETRIES", "3"),
            ("PROXMOX_API_RETRY_BACKOFF", "250ms"),
            ("PROXMOX_API_VERIFY_TLS", "false"),
        ])
        .expect("valid environment");
        let printed = format!("{builder:?}");
        assert!(
            printed.contains("root@pam!ci") && !printed.contains("5f2a-secret"),
            "{printed}"
        );
        assert!(
            printed.contains("timeout: 2.5s") && printed.contains("max_retries: 3"),
            "{printed}"
        );
        assert!(
            printed.contains("backoff: 250ms")
                && printed.contains("danger_accept_invalid_certs: true"),
            "{printed}"
        );
        assert!(builder.build().is_ok());
    }

    #[test]
    fn password_from_env() {
        let builder = builder_from(&[
            ("PROXMOX_API_URL", "http://127.0.0.1:8005"),
            ("PROXMOX_API_USER", "root@pam"),
            ("PROXMOX_API_PASSWORD", "secret"),
            ("PROXMOX_API_TOKEN_ID", ""),
        ])
        .expect("valid environment");
        assert!(format!("{builder:?}").contains("Password"));
    }

    #[test]
    fn env_errors() {
        let check = |vars: &[(&str, &str)], needle: &str| {
            let error = builder_from(vars).expect_err("invalid environment");
            assert!(error.to_string().contains(needle), "{error}");
        };
        check(&[], "PROXMOX_API_URL");
        check(&[("PROXMOX_API_URL", "https://pve")], "no credentials");
        check(
            &[
                ("PROXMOX_API_URL", "https://pve"),
                ("PROXMOX_API_TOKEN_ID", "a@pve!b"),
            ],
            "TOKEN_SECRET",
        );
        check(
            &[
                ("PROXMOX_API_URL", "https://pve"),
                ("PROXMOX_API_USER", "root@pam"),
            ],
            "PASSWORD",
        );
        let token = [
            ("PROXMOX_API_URL", "https://pve"),
            ("PROXMOX_API_TOKEN_ID", "a"),
            ("PROXMOX_API_TOKEN_SECRET", "b"),
        ];
        check(
            &[&token[..], &[("PROXMOX_API_TIMEOUT", "soon")]].concat(),
            "PROXMOX_API_TIMEOUT",
        );
        check(
            &[&token[..], &[("PROXMOX_API_RETRIES", "-1")]].concat(),
            "PROXMOX_API_RETRIES",
        );
        check(
            &[&token[..], &[("PROXMOX_API_VERIFY_TLS", "maybe")]].concat(),
            "PROXMOX_API_VERIFY_TLS",
        );
        check(
            &[
                &token[..],
                &[("PROXMOX_API_CA_FILE", "/nonexistent/ca.pem")],
            ]
            .concat(),
            "PROXMOX_API_CA_FILE",
        );
    }

    #[test]
    fn durations() {
        let check = |text: &str, expected: Option<Duration>| {
            assert_eq!(parse_duration("X", text).ok(), expected, "{text:?}");
        };
        check("30", Some(Duration::from_secs(30)));
        check("2.5", Some(Duration::from_millis(2500)));
        check("500ms", Some(Duration::from_millis(500)));
        check("10s", Some(Duration::from_secs(10)));
        check("2m", Some(Duration::from_secs(120)));
        check("-1", None);
        check("NaN", None);
        check("ten", None);
    }
}
