//! Exit codes and how errors are printed.
//!
//! Commands return `anyhow::Result`; [`report`] finds what kind of failure is in the chain and
//! picks the exit code: 0 ok, 1 API error, 2 usage error (bad arguments, unknown paths or
//! parameters, invalid values, a bad config), 3 connection or TLS error, 4 a task failed.
//! API errors are printed as pvesh prints them: `status message`, then one `param: message`
//! line per parameter. No error carries a secret: the SDK's errors never format one, and the
//! config and profile messages name fields, never values.

use std::fmt;

/// A usage error (exit code 2): the message is the whole story.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A worker task that ended with an error (exit code 4); already printed.
#[derive(Debug)]
pub struct TaskFailed {
    /// The task's exit status.
    pub exit_status: String,
}

impl fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task failed: {}", self.exit_status)
    }
}

impl std::error::Error for TaskFailed {}

/// Parameter verification failures found before sending (exit code 2), printed like pvesh's.
#[derive(Debug)]
pub struct ParamErrors(pub Vec<(String, String)>);

impl fmt::Display for ParamErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "400 Parameter verification failed.")?;
        for (name, message) in &self.0 {
            write!(f, "\n{name}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParamErrors {}

/// Wraps a message as a [`UsageError`].
pub fn usage_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Prints `error` to stderr and returns the exit code.
pub fn report(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(failed) = cause.downcast_ref::<TaskFailed>() {
            let _ = failed;
            return 4;
        }
        if let Some(usage) = cause.downcast_ref::<UsageError>() {
            eprintln!("{usage}");
            return 2;
        }
        if let Some(params) = cause.downcast_ref::<ParamErrors>() {
            eprintln!("{params}");
            return 2;
        }
        if let Some(sdk) = cause.downcast_ref::<proxmox_sdk::Error>() {
            return report_sdk(error, sdk);
        }
    }
    eprintln!("error: {}", chain(error));
    1
}

fn report_sdk(error: &anyhow::Error, sdk: &proxmox_sdk::Error) -> u8 {
    if let proxmox_sdk::Error::TaskFailed(failed) = sdk {
        eprintln!("task failed: {}", failed.exit_status());
        return 4;
    }
    if sdk.is_api() || sdk.is_auth() {
        let status = sdk.status().map(|status| status.as_u16().to_string());
        let message = sdk
            .api_message()
            .map(str::to_owned)
            .unwrap_or_else(|| sdk.to_string());
        match status {
            Some(status) => eprintln!("{status} {}", message.trim_end()),
            None => eprintln!("{}", message.trim_end()),
        }
        if let Some(params) = sdk.param_errors() {
            for (name, message) in params {
                eprintln!("{name}: {}", message.trim_end());
            }
        }
        return 1;
    }
    eprintln!("error: {}", chain(error));
    if sdk.is_tls() || sdk.is_connection() || sdk.is_timeout() {
        3
    } else if matches!(sdk, proxmox_sdk::Error::Config { .. }) {
        2
    } else {
        1
    }
}

/// `outer: inner: innermost`, each layer once.
fn chain(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
