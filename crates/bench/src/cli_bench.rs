//! `bench cli`: one-shot command-line calls, process start to exit, median of 10 (after one
//! warm-up run each):
//!
//! - `pvectl get /version` against our release mock on loopback (plain HTTP, API token);
//! - proxmox-sdk 0.0.15's CLI, `proxmox --json get /version`, against its mock (its `mock`
//!   backend, in-process: 0.0.15's HTTPS backend cannot reach its own HTTP-only mock server, and
//!   its `--backend` flag is not applied, so a profile in `$HOME/.proxmox-cli/config.json`
//!   selects the mock);
//! - a one-shot proxmoxer script (`ProxmoxAPI(...).version.get()`) against our mock, same token;
//! - `pvectl usage /nodes/{node}/qemu --command create --verbose` and the completion of a path
//!   (`pvectl __complete --current=/nodes/pve1/q get`): no network.
//!
//! Prints a table and writes `target/bench/cli.json`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::setup::{self, BenchEnv};
use crate::stats;
use crate::systems::{self, Seed, SystemKind};

/// Measured runs per command.
const RUNS: usize = 10;

/// One command's timings.
#[derive(Debug, Serialize)]
struct Timing {
    name: String,
    command: String,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

/// Runs the CLI benchmark.
pub async fn run(env: &BenchEnv, build: bool) -> anyhow::Result<()> {
    let target = setup::target_dir(&env.root);
    if build {
        eprintln!("building the release pvectl binary");
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "--package", "pvectl"])
            .current_dir(&env.root)
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --release -p pvectl failed ({status})");
        }
    }
    let pvectl = target.join("release").join("pvectl");
    anyhow::ensure!(pvectl.exists(), "{} is missing", pvectl.display());

    let server = systems::start(env, SystemKind::Ours, Seed::Default).await?;
    let addr = server.http.context("our mock serves no plain HTTP")?;
    let url = format!("http://{addr}");
    let token = create_token(&pvectl, &url)?;

    let home = env.bench_dir.join("cli-home");
    std::fs::create_dir_all(home.join(".proxmox-cli"))
        .with_context(|| format!("creating {}", home.display()))?;
    std::fs::write(
        home.join(".proxmox-cli").join("config.json"),
        r#"{"default_profile": "mock", "profiles": {"mock": {"backend": "mock"}}}"#,
    )
    .context("writing the proxmox-sdk CLI profile")?;
    let python_cli = env
        .python
        .parent()
        .context("the virtualenv has no bin directory")?
        .join("proxmox");

    let token_env = [
        ("PROXMOX_API_URL", url.clone()),
        ("PROXMOX_API_TOKEN_ID", "root@pam!bench".to_owned()),
        ("PROXMOX_API_TOKEN_SECRET", token.clone()),
    ];
    let proxmoxer_script = format!(
        "from proxmoxer import ProxmoxAPI\n\
         api = ProxmoxAPI('{host}', port={port}, user='root@pam', token_name='bench', \
         token_value='{token}', verify_ssl=False, timeout=30)\n\
         api._store['base_url'] = 'http://{host}:{port}/api2/json'\n\
         print(api.version.get())\n",
        host = addr.ip(),
        port = addr.port()
    );

    let mut timings = Vec::new();
    let mut pvectl_get = Command::new(&pvectl);
    pvectl_get.args(["get", "/version"]).envs(token_env.clone());
    timings.push(measure("pvectl get /version", &mut pvectl_get)?);

    let mut python_get = Command::new(&python_cli);
    python_get
        .args(["--json", "get", "/version"])
        .env("HOME", &home)
        .current_dir(&home);
    timings.push(measure(
        "proxmox get /version (proxmox-sdk 0.0.15)",
        &mut python_get,
    )?);

    let mut proxmoxer = Command::new(&env.python);
    proxmoxer.args(["-c", &proxmoxer_script]);
    timings.push(measure("proxmoxer one-shot script", &mut proxmoxer)?);

    let mut usage = Command::new(&pvectl);
    usage.args([
        "usage",
        "/nodes/{node}/qemu",
        "--command",
        "create",
        "--verbose",
    ]);
    timings.push(measure("pvectl usage (verbose, create VM)", &mut usage)?);

    let mut complete = Command::new(&pvectl);
    complete.args(["__complete", "--current=/nodes/pve1/q", "get"]);
    timings.push(measure("pvectl path completion", &mut complete)?);
    server.stop();

    println!("\none-shot CLI calls, process start to exit, median of {RUNS} (ms)\n");
    println!("| command | median | min | max |");
    println!("|---|---:|---:|---:|");
    for timing in &timings {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            timing.name, timing.median_ms, timing.min_ms, timing.max_ms
        );
    }
    let ours = timings[0].median_ms;
    println!(
        "\npvectl is {:.1}x faster than the proxmox-sdk CLI and {:.1}x faster than proxmoxer",
        timings[1].median_ms / ours,
        timings[2].median_ms / ours
    );
    let path = env.bench_dir.join("cli.json");
    std::fs::write(&path, serde_json::to_string_pretty(&timings)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("results: {}", path.display());
    Ok(())
}

/// Creates the API token `root@pam!bench` (no privilege separation) with pvectl itself.
fn create_token(pvectl: &Path, url: &str) -> anyhow::Result<String> {
    let output = Command::new(pvectl)
        .args([
            "create",
            "/access/users/root@pam/token/bench",
            "--privsep",
            "0",
        ])
        .args(["--output-format", "json"])
        .env("PROXMOX_API_URL", url)
        .env("PROXMOX_API_USER", "root@pam")
        .env("PROXMOX_API_PASSWORD", systems::ROOT_PASSWORD)
        .output()
        .context("creating the bench token with pvectl")?;
    if !output.status.success() {
        bail!(
            "pvectl could not create the token: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let reply: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("decoding the token reply")?;
    reply["value"]
        .as_str()
        .map(str::to_owned)
        .context("the token reply has no value")
}

/// One warm-up run, then [`RUNS`] measured ones; each must succeed.
fn measure(name: &str, command: &mut Command) -> anyhow::Result<Timing> {
    command.stdin(Stdio::null());
    let mut samples = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let started = Instant::now();
        let output = command
            .output()
            .with_context(|| format!("running {name}"))?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if !output.status.success() {
            bail!(
                "{name} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if run > 0 {
            samples.push(elapsed);
        }
    }
    samples.sort_by(f64::total_cmp);
    let shown: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    Ok(Timing {
        name: name.to_owned(),
        command: shown.join(" "),
        median_ms: stats::median(&samples).unwrap_or(0.0),
        min_ms: samples.first().copied().unwrap_or(0.0),
        max_ms: samples.last().copied().unwrap_or(0.0),
    })
}
