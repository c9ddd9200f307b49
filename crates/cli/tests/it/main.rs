//! Integration tests of the `pvectl` binary, driven as a user drives it, against an in-process
//! mock server (auth on, `root@pam` by password through `PROXMOX_API_*`), with a private
//! `HOME`/`XDG_CONFIG_HOME` per test.
//!
//! - `commands`: every verb, output format, validation, exit codes, `--debug`, `--mock`.
//! - `profiles`: the config file, its permissions, `config add|list|use|remove|show`.
//! - `tasks`: waiting, `--follow`, a failing task injected with `/_mock/faults`.
//! - `shell`: completion scripts syntax-checked; the terminal view in tmux.

mod commands;
mod profiles;
mod shell;
mod tasks;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// A mock server and a private home directory for one test.
pub struct Env {
    /// The mock (kept alive by the runtime).
    pub server: mock_server::MockServerHandle,
    /// `HOME` of the commands.
    pub home: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Default for Env {
    /// A mock with the default seed; worker tasks finish at once.
    fn default() -> Env {
        Env::with(|builder| builder)
    }
}

impl Env {
    /// A mock with the default seed; worker tasks finish at once.
    pub fn new() -> Env {
        Env::default()
    }

    /// A mock configured by `configure`.
    pub fn with(
        configure: impl FnOnce(mock_server::MockServerBuilder) -> mock_server::MockServerBuilder,
    ) -> Env {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let builder = mock_server::MockServer::builder()
            .store(mock_server::Store::Memory)
            .listen("127.0.0.1:0".parse().expect("address"))
            .http_listen("127.0.0.1:0".parse().expect("address"));
        let server = runtime
            .block_on(configure(builder).spawn())
            .expect("mock starts");
        let home = std::env::temp_dir().join(format!(
            "pvectl-it-{}-{}",
            std::process::id(),
            server.http_addr().port()
        ));
        std::fs::create_dir_all(&home).expect("home");
        Env {
            server,
            home,
            runtime,
        }
    }

    /// `pvectl` with the mock's URL and root@pam's password in the environment.
    pub fn pvectl(&self) -> assert_cmd::Command {
        let mut command = self.bare();
        command
            .env("PROXMOX_API_URL", self.server.base_url())
            .env("PROXMOX_API_USER", "root@pam")
            .env("PROXMOX_API_PASSWORD", "secret");
        command
    }

    /// `pvectl` without any connection settings (only the private home).
    pub fn bare(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(env!("CARGO_BIN_EXE_pvectl"));
        for (name, _) in std::env::vars() {
            if name.starts_with("PROXMOX_") {
                command.env_remove(name);
            }
        }
        command
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("LANG", "C")
            .env_remove("LC_ALL")
            .env_remove("LC_CTYPE")
            .timeout(Duration::from_secs(60));
        command
    }

    /// The config file the commands use.
    pub fn config_file(&self) -> PathBuf {
        self.home
            .join("config")
            .join("proxmox-sdk")
            .join("config.yaml")
    }

    /// `POST /_mock/faults` with the control token.
    pub fn inject_fault(&self, spec: &str) {
        let mut stream =
            std::net::TcpStream::connect(self.server.http_addr()).expect("connect to the mock");
        let request = format!(
            "POST /_mock/faults HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{spec}",
            self.server.control_token(),
            spec.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("reply");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
        let _ = &self.runtime;
    }
}

/// The text of a command's stdout.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of a command's stderr.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
