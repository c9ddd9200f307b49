//! `mock-server`: a stateful mock of the Proxmox VE API.
//!
//! Run with:
//!
//! ```text
//! cargo run -p mock-server                      # latest schema, SQLite state, HTTPS :8006, HTTP :8005
//! cargo run -p mock-server -- --schema 8.4 --store memory --auth off
//! RUST_LOG=mock_server=debug cargo run -p mock-server -- --task-duration 1s,qmstart=2s,vzdump=10s
//! cargo run -p mock-server -- --profile large --store memory
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run -p mock-server --features otel
//! cargo run -p mock-server -- --upstream https://pve:8006 --upstream-fingerprint AA:BB:... \
//!     --report proxy-report.json --record recorded/     # real mode, docs/proxy.md
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

/// mimalloc instead of the system allocator: the server allocates per request (headers, rows,
/// reply buffers), and glibc's malloc and free were about a fifth of the instructions of a
/// request (docs/performance.md, "Round 7"). Only the binary sets it; the library leaves the
/// choice to whoever embeds the mock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, ValueEnum};
use mock_server::{
    Fixture, MockServer, MockServerBuilder, PreparedServer, Profile, Store, Synchronous,
    TaskDurations, TlsSource, UpstreamConfig, UpstreamTls,
};

/// Command-line options (each with an environment fallback).
#[derive(Debug, Parser)]
#[command(
    name = "mock-server",
    about = "Stateful mock of the Proxmox VE API",
    version
)]
struct Options {
    /// Schema version: latest, 9.1, 9.0 or 8.4.
    #[arg(long, env = "PROXMOX_MOCK_SCHEMA_VERSION", default_value = "latest")]
    schema: String,
    /// State backend.
    #[arg(long, env = "PROXMOX_MOCK_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// SQLite state file (the certificate is kept beside it).
    #[arg(
        long,
        env = "PROXMOX_MOCK_STATE_PATH",
        default_value = ".proxmox-mock/state.db"
    )]
    state: PathBuf,
    /// HTTPS listen address.
    #[arg(long, env = "PROXMOX_MOCK_LISTEN", default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Plain HTTP listen address.
    #[arg(
        long,
        env = "PROXMOX_MOCK_HTTP_LISTEN",
        default_value = "127.0.0.1:8005"
    )]
    http_listen: SocketAddr,
    /// Seed fixture (YAML or JSON) replacing the default cluster.
    #[arg(long, env = "PROXMOX_MOCK_SEED", conflicts_with = "profile")]
    seed: Option<PathBuf>,
    /// Named seed profile: small (2 nodes) or large (16 nodes, 5,000 guests).
    #[arg(long, env = "PROXMOX_MOCK_PROFILE")]
    profile: Option<Profile>,
    /// Authentication.
    #[arg(long, env = "PROXMOX_MOCK_AUTH", value_enum, default_value_t = Switch::On)]
    auth: Switch,
    /// Password of root@pam.
    #[arg(
        long,
        env = "PROXMOX_MOCK_ROOT_PASSWORD",
        default_value = "secret",
        hide_env_values = true
    )]
    root_password: String,
    /// Secret that opens the /_mock control endpoints (`Authorization: Bearer <secret>`) when
    /// authentication is on; root@pam can use them either way.
    #[arg(long, env = "PROXMOX_MOCK_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
    /// Host name under which the /_mock control endpoints answer besides loopback (repeat, or
    /// comma-separate in the variable).
    #[arg(
        long = "allowed-host",
        env = "PROXMOX_MOCK_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// TLS certificate (PEM); generated when absent.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long worker tasks run: a default and per-type overrides, e.g.
    /// `1s,qmstart=2s,vzdump=10s` (units ms, s, m).
    #[arg(long, env = "PROXMOX_MOCK_TASK_DURATION", value_parser = TaskDurations::parse)]
    task_duration: Option<TaskDurations>,
    /// How many finished tasks each node keeps; older ones are dropped.
    #[arg(long, env = "PROXMOX_MOCK_TASK_HISTORY", default_value_t = 2_000)]
    task_history: usize,
    /// How long a connection may take for its TLS handshake and to send each request's headers
    /// before it is closed, in seconds (fractions allowed).
    #[arg(long, env = "PROXMOX_MOCK_HEADER_TIMEOUT", default_value = "30", value_parser = parse_timeout)]
    header_timeout: Duration,
    /// How long the reply to a failed authentication waits, in seconds (pveproxy: 3; 0 is off).
    #[arg(long, env = "PROXMOX_MOCK_AUTH_FAILURE_DELAY", default_value = "0", value_parser = parse_seconds)]
    auth_failure_delay: Duration,
    /// Durability of the SQLite state: normal (a reply survives a crash of the process) or full
    /// (it also survives a power loss; an fsync per commit).
    #[arg(long, env = "PROXMOX_MOCK_SYNC", value_enum, default_value_t = SyncLevel::Normal)]
    sync: SyncLevel,
    /// Real mode: forward every API request to this Proxmox VE (e.g. https://pve:8006),
    /// validating requests and replies against the schema.
    #[arg(long, env = "PROXMOX_MOCK_UPSTREAM")]
    upstream: Option<String>,
    /// Accept exactly the upstream certificate with this SHA-256 fingerprint (AA:BB:...).
    #[arg(long, requires = "upstream", conflicts_with_all = ["upstream_ca", "upstream_insecure"])]
    upstream_fingerprint: Option<String>,
    /// Trust the CA certificates of this PEM file for the upstream (besides the system's).
    #[arg(long, requires = "upstream", conflicts_with = "upstream_insecure")]
    upstream_ca: Option<PathBuf>,
    /// Do not check the upstream's certificate at all (warns).
    #[arg(long, requires = "upstream")]
    upstream_insecure: bool,
    /// How long the upstream may take to answer, in seconds.
    #[arg(long, default_value = "60", value_parser = parse_timeout, requires = "upstream")]
    upstream_timeout: Duration,
    /// Refuse requests that fail validation (Proxmox's 400) instead of forwarding them.
    #[arg(long, requires = "upstream")]
    strict: bool,
    /// Write the discrepancy report at shutdown: JSON to FILE, Markdown beside it (.md).
    #[arg(long, value_name = "FILE", requires = "upstream")]
    report: Option<PathBuf>,
    /// Record what the upstream says into DIR/fixture.yaml (a --seed fixture) at shutdown.
    #[arg(long, value_name = "DIR", requires = "upstream")]
    record: Option<PathBuf>,
    /// With --record: walk the upstream's GET tree from / at start, with the API token in
    /// PROXMOX_MOCK_UPSTREAM_TOKEN (user@realm!name=secret).
    #[arg(long, requires = "record")]
    record_crawl: bool,
    /// API token of the crawl.
    #[arg(
        long,
        env = "PROXMOX_MOCK_UPSTREAM_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    upstream_token: Option<String>,
    /// Requests the crawl sends at a time.
    #[arg(long, default_value_t = 4)]
    record_crawl_concurrency: usize,
    /// How long the crawl may take, in seconds.
    #[arg(long, default_value = "120", value_parser = parse_timeout)]
    record_crawl_limit: Duration,
    /// Deprecated: the default task duration in milliseconds (use --task-duration).
    #[arg(long, env = "PROXMOX_MOCK_TASK_DELAY_MS", hide = true)]
    task_delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Sqlite,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SyncLevel {
    Normal,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    // Start-up runs on three threads (docs/performance.md, "Round 11"): the API is compiled
    // on one (`preload`), the state is built, the listeners bound and the certificate loaded on
    // another (`prepare`), while this one starts the runtime; the server then finds both ready.
    // The log subscriber comes first, so that nothing the other two log is lost.
    mock_server::preload(&options.schema);
    let telemetry = init_tracing()?;
    let (builder, store, tag) = server_builder(&options)?;
    let preparing = std::thread::Builder::new()
        .name("prepare".to_owned())
        .spawn(move || builder.prepare())
        .context("starting the preparing thread")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let prepared = preparing
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        .context("starting the mock server")?;
    let served = runtime.block_on(serve(&options, prepared, &store, tag));
    drop(telemetry);
    served
}

/// The server's configuration from the command line, the store it uses and the schema's tag.
fn server_builder(options: &Options) -> anyhow::Result<(MockServerBuilder, Store, &'static str)> {
    let tag = mock_server::resolve_tag(&options.schema).context("selecting the schema")?;
    let store = match options.store {
        StoreKind::Sqlite => {
            if let Some(dir) = options.state.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            Store::Sqlite(options.state.clone())
        }
        StoreKind::Memory => Store::Memory,
    };
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::SelfSigned(None),
    };
    let mut builder = MockServer::builder()
        .schema(tag)
        .store(store.clone())
        .auth(options.auth == Switch::On)
        .root_password(options.root_password.clone())
        .listen(options.listen)
        .http_listen(options.http_listen)
        .allowed_hosts(options.allowed_hosts.iter().map(|host| host.trim()))
        .tls(tls)
        .header_timeout(options.header_timeout)
        .auth_failure_delay(options.auth_failure_delay)
        .synchronous(match options.sync {
            SyncLevel::Normal => Synchronous::Normal,
            SyncLevel::Full => Synchronous::Full,
        });
    if let Some(token) = &options.control_token {
        builder = builder.control_token(token.clone());
    }
    let mut durations = options.task_duration.clone().unwrap_or_default();
    if options.task_duration.is_none()
        && let Some(ms) = options.task_delay_ms
    {
        durations.default = Duration::from_millis(ms);
    }
    builder = builder
        .task_durations(durations)
        .task_history(options.task_history);
    if let Some(profile) = options.profile {
        builder = builder.profile(profile);
    }
    if let Some(path) = &options.seed {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        builder = builder
            .seed(Fixture::parse(&text).with_context(|| format!("parsing {}", path.display()))?);
    }
    if let Some(url) = &options.upstream {
        builder = builder.upstream(upstream_config(options, url)?);
    }
    Ok((builder, store, tag))
}

/// Serves until a stop signal, after printing where.
async fn serve(
    options: &Options,
    prepared: PreparedServer,
    store: &Store,
    tag: &str,
) -> anyhow::Result<()> {
    let server = prepared.spawn().await.context("starting the mock server")?;
    println!("Proxmox VE mock, schema {tag}");
    if let Some(profile) = options.profile {
        println!("  profile: {}", profile.name());
    }
    println!("  HTTPS: {}", server.https_base_url());
    println!("  HTTP:  {}", server.base_url());
    match store {
        Store::Sqlite(path) => println!(
            "  state: {} (SQLite, WAL, synchronous={})",
            path.display(),
            match options.sync {
                SyncLevel::Normal => "NORMAL",
                SyncLevel::Full => "FULL",
            }
        ),
        Store::Memory => println!("  state: memory"),
    }
    if let Some(url) = &options.upstream {
        println!(
            "  upstream: {url} (real mode{}; discrepancies at /_mock/discrepancies)",
            if options.strict { ", strict" } else { "" }
        );
    } else if options.auth == Switch::On {
        println!("  login: root@pam / (password from --root-password, default 'secret')");
    } else {
        println!("  auth:  off");
    }
    shutdown_signal().await;
    server.shutdown().await.context("shutting down")?;
    Ok(())
}

/// The log subscriber (`RUST_LOG`, default `mock_server=info`) and, with the feature `otel` and
/// an OTLP endpoint in the environment, the span export (`docs/observability.md`): the mock's
/// spans at every level and its warnings and errors, whatever `RUST_LOG` says.
fn init_tracing() -> anyhow::Result<Telemetry> {
    use tracing_subscriber::prelude::*;
    let log_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("mock_server=info"));
    let logs = tracing_subscriber::fmt::layer().with_filter(log_filter);
    #[cfg(feature = "otel")]
    {
        use mock_server::telemetry::otel;
        let provider =
            otel::tracer_provider_from_env().context("setting up the OpenTelemetry export")?;
        let export = provider.as_ref().map(|provider| {
            otel::layer(provider).with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target().starts_with("mock_server")
                    && (meta.is_span() || *meta.level() <= tracing::Level::WARN)
            }))
        });
        tracing_subscriber::registry()
            .with(logs)
            .with(export)
            .init();
        Ok(Telemetry(provider))
    }
    #[cfg(not(feature = "otel"))]
    {
        tracing_subscriber::registry().with(logs).init();
        Ok(Telemetry)
    }
}

/// Exports the spans still buffered when dropped (feature `otel`).
#[cfg(feature = "otel")]
struct Telemetry(Option<mock_server::telemetry::otel::opentelemetry_sdk::trace::SdkTracerProvider>);

/// Exports the spans still buffered when dropped (feature `otel`).
#[cfg(not(feature = "otel"))]
struct Telemetry;

#[cfg(feature = "otel")]
impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "exporting the last spans failed");
        }
    }
}

/// Real mode's settings from the command line.
fn upstream_config(options: &Options, url: &str) -> anyhow::Result<UpstreamConfig> {
    let tls = if let Some(fingerprint) = &options.upstream_fingerprint {
        UpstreamTls::fingerprint(fingerprint).context("reading --upstream-fingerprint")?
    } else if let Some(path) = &options.upstream_ca {
        UpstreamTls::Ca(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
    } else if options.upstream_insecure {
        UpstreamTls::Insecure
    } else {
        UpstreamTls::Platform
    };
    let mut config = UpstreamConfig::new(url)
        .tls(tls)
        .strict(options.strict)
        .timeout(options.upstream_timeout);
    if let Some(path) = &options.report {
        config = config.report(path.clone());
    }
    if let Some(dir) = &options.record {
        config = config.record(dir.clone());
    }
    if options.record_crawl {
        let token = options
            .upstream_token
            .clone()
            .context("--record-crawl needs an API token in PROXMOX_MOCK_UPSTREAM_TOKEN")?;
        config = config.record_crawl(
            token,
            options.record_crawl_concurrency,
            options.record_crawl_limit,
        );
    }
    Ok(config)
}

/// A duration in seconds: `3`, `0.5` (not negative, at most a day).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("'{text}' is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A timeout in seconds: as [`parse_seconds`], but not zero (every connection would be closed).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_seconds(text)?;
    if timeout < Duration::from_millis(1) {
        return Err(format!("'{text}' is too short for a timeout"));
    }
    Ok(timeout)
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
