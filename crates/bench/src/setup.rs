//! Preparing a run: paths, the release mock binary, the Python peers' virtualenv, the shared TLS
//! certificate, and a description of the machine.
//!
//! The peers are installed from PyPI into `target/bench/venv` (never globally), pinned to the
//! versions the comparison is about; a stamp file records what was installed so later runs skip
//! pip. One self-signed certificate for `127.0.0.1` is made per run and given to every HTTPS
//! server (ours, fakepve, the bare handler), so the TLS work is the same for all of them and the
//! load generator can verify it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsConnector;

/// The Python packages of the comparison, pinned.
pub const PYTHON_REQUIREMENTS: &[&str] = &[
    "proxmox-sdk==0.0.15",
    "fakepve==0.5.0",
    "proxmoxer==2.3.0",
    "requests",
];

/// Packages whose installed versions are recorded in the results.
const RECORDED_PACKAGES: &[&str] = &[
    "proxmox-sdk",
    "fakepve",
    "proxmoxer",
    "requests",
    "uvicorn",
    "fastapi",
    "aiohttp",
    "uvloop",
    "httptools",
];

/// Everything a benchmark needs to start servers and clients.
pub struct BenchEnv {
    /// Workspace root.
    pub root: PathBuf,
    /// `target/bench`: the venv, certificates, per-run state.
    pub bench_dir: PathBuf,
    /// The virtualenv's interpreter.
    pub python: PathBuf,
    /// Our mock: a copy of `target/release/mock-server` (see [`copy_binary`]).
    pub mock_binary: PathBuf,
    /// Another mock-server binary to measure beside ours (`--baseline`), copied the same way
    /// ([`BenchEnv::set_baseline`]).
    pub baseline_binary: Option<PathBuf>,
    /// A copy of this bench binary, which serves the bare axum handler (`serve-bare`).
    pub bench_binary: PathBuf,
    /// The bench certificate (PEM file).
    pub cert_path: PathBuf,
    /// Its private key (PEM file).
    pub key_path: PathBuf,
    /// A TLS connector that trusts exactly the bench certificate.
    pub tls: TlsConnector,
    /// Shorter runs for iteration.
    pub quick: bool,
    /// `mock --check`: ours and the bare handler only, GETs only.
    pub check: bool,
    /// `mock --creates`: ours (and the baseline binary) only, creates only.
    pub creates_only: bool,
}

/// The machine a run happened on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` when the run started.
    pub load_before: String,
    /// `/proc/loadavg` when the run ended.
    pub load_after: String,
    /// Installed versions of the Python peers and their servers.
    pub python_packages: BTreeMap<String, String>,
    /// `rustc --version`.
    pub rustc: String,
}

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Prepares what the selected benchmarks need.
///
/// `need_python` installs the peers; `build` runs `cargo build --release -p mock-server` first.
pub fn prepare(quick: bool, need_python: bool, build: bool) -> anyhow::Result<BenchEnv> {
    let root = workspace_root();
    let target = target_dir(&root);
    let bench_dir = target.join("bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("creating {}", bench_dir.display()))?;
    if build {
        build_mock(&root)?;
    }
    let built = target.join("release").join("mock-server");
    if !built.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p mock-server`",
            built.display()
        );
    }
    let bin_dir = bench_dir.join("bin");
    let mock_binary = copy_binary(&built, &bin_dir.join("ours"))?;
    let this = std::env::current_exe().context("locating the bench binary")?;
    let bench_binary = copy_binary(&this, &bin_dir.join("bench"))?;
    let python = if need_python {
        ensure_venv(&bench_dir)?
    } else {
        bench_dir.join("venv").join("bin").join("python")
    };
    let tls_dir = bench_dir.join("tls");
    let (cert_path, key_path, cert_pem) = make_certificate(&tls_dir)?;
    let tls = connector_trusting(&cert_pem)?;
    Ok(BenchEnv {
        root,
        bench_dir,
        python,
        mock_binary,
        baseline_binary: None,
        bench_binary,
        cert_path,
        key_path,
        tls,
        quick,
        check: false,
        creates_only: false,
    })
}

impl BenchEnv {
    /// Measures `path` beside ours (`--baseline`), from a copy like ours.
    pub fn set_baseline(&mut self, path: Option<&Path>) -> anyhow::Result<()> {
        self.baseline_binary = match path {
            Some(path) if !path.exists() => bail!("baseline binary {} is missing", path.display()),
            Some(path) => Some(copy_binary(
                path,
                &self.bench_dir.join("bin").join("baseline"),
            )?),
            None => None,
        };
        Ok(())
    }
}

/// Copies an executable into `dir` (under its own file name) and returns the copy's path.
///
/// Every system is started from a fresh copy, so that all start from files written the same
/// way: a binary the linker has just written started 8–19% slower than a copy of the same
/// file (docs/performance.md, issue 15's round 9; the page cache holds the linker's file in
/// smaller pieces, and each costs a page fault), which made every A/B against a copied
/// baseline lean against the new build. The copy is written beside and renamed into place,
/// so a copy still running from an earlier bench is not overwritten.
pub fn copy_binary(source: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = source
        .file_name()
        .with_context(|| format!("{} has no file name", source.display()))?;
    let target = dir.join(name);
    let partial = dir.join(format!(".{}.partial", name.to_string_lossy()));
    std::fs::copy(source, &partial)
        .with_context(|| format!("copying {} to {}", source.display(), partial.display()))?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
    Ok(target)
}

/// `cargo build --release -p mock-server --bin mock-server`.
fn build_mock(root: &Path) -> anyhow::Result<()> {
    eprintln!("building the release mock-server binary");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--package",
            "mock-server",
            "--bin",
            "mock-server",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p mock-server failed ({status})");
    }
    Ok(())
}

/// Creates `venv` under `bench_dir` and installs [`PYTHON_REQUIREMENTS`] unless the stamp says
/// they are there; returns the interpreter.
fn ensure_venv(bench_dir: &Path) -> anyhow::Result<PathBuf> {
    let venv = bench_dir.join("venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join(".bench-requirements");
    let wanted = PYTHON_REQUIREMENTS.join("\n");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|text| text == wanted) {
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("creating the peers' virtualenv in {}", venv.display());
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
    }
    eprintln!("installing {}", PYTHON_REQUIREMENTS.join(" "));
    run_checked(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYTHON_REQUIREMENTS),
        "pip install",
    )?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

fn run_checked(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Writes a fresh self-signed certificate for `127.0.0.1` and `localhost`.
fn make_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, String)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .context("generating the bench certificate")?;
    let cert_pem = certified.cert.pem();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert_pem)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    std::fs::write(&key_path, certified.signing_key.serialize_pem())
        .with_context(|| format!("writing {}", key_path.display()))?;
    Ok((cert_path, key_path, cert_pem))
}

/// A rustls client (ring) whose only trust anchor is `cert_pem`.
pub fn client_tls_config(cert_pem: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut cert_pem.as_bytes()) {
        roots
            .add(cert.context("reading the bench certificate")?)
            .context("trusting the bench certificate")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn connector_trusting(cert_pem: &str) -> anyhow::Result<TlsConnector> {
    Ok(TlsConnector::from(Arc::new(client_tls_config(cert_pem)?)))
}

/// A rustls server configuration (ring, HTTP/1.1) from PEM files.
pub fn server_tls_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let cert_pem =
        std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem =
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the certificate")?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("reading the key")?
        .context("no private key in the key file")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS server configuration")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Describes the machine; `python` (if present) reports the peers' versions.
pub fn machine(python: Option<&Path>) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        memory_mib,
        kernel,
        load_before: loadavg(),
        load_after: String::new(),
        python_packages: python.map(python_packages).unwrap_or_default(),
        rustc,
    }
}

/// `/proc/loadavg`, trimmed.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn python_packages(python: &Path) -> BTreeMap<String, String> {
    if !python.exists() {
        return BTreeMap::new();
    }
    let script = format!(
        "import importlib.metadata as m, json\nout = {{}}\nfor name in {names:?}:\n    try:\n        out[name] = m.version(name)\n    except m.PackageNotFoundError:\n        pass\nprint(json.dumps(out))",
        names = RECORDED_PACKAGES
    );
    Command::new(python)
        .args(["-c", &script])
        .output()
        .ok()
        .and_then(|output| serde_json::from_slice(&output.stdout).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A copy keeps the bytes and the executable bit, and a second copy replaces the first.
    #[test]
    fn binaries_are_copied_whole_and_replaced() {
        let root = std::env::temp_dir().join(format!("bench-copy-{}", std::process::id()));
        let source_dir = root.join("source");
        std::fs::create_dir_all(&source_dir).unwrap();
        let source = source_dir.join("mock-server");
        std::fs::write(&source, b"first").unwrap();
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o755)).unwrap();

        let copy = copy_binary(&source, &root.join("bin")).unwrap();
        assert_eq!(copy, root.join("bin").join("mock-server"));
        assert_eq!(std::fs::read(&copy).unwrap(), b"first");
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "not executable: {mode:o}");

        std::fs::write(&source, b"second build").unwrap();
        let again = copy_binary(&source, &root.join("bin")).unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), b"second build");
        let names: Vec<_> = std::fs::read_dir(root.join("bin"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["mock-server"], "a partial copy was left behind");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
