//! `pvectl`: pvesh for your laptop. The Proxmox VE API from any machine, over `proxmox-sdk`,
//! with pvesh's verbs, argument style and output formats.
//!
//! Run with:
//!
//! ```text
//! cargo run -p pvectl -- --mock ls /nodes                  # an in-process mock, nothing to set up
//! cargo run -p pvectl -- --mock get /nodes/pve1/qemu --output-format json-pretty
//! cargo run -p pvectl -- usage /nodes/{node}/qemu --command create --verbose
//! pvectl config add lab --url https://pve:8006 --token-id 'root@pam!cli' --token-secret -
//! pvectl create /nodes/pve1/qemu --vmid 120 --memory 2048 --net0 virtio,bridge=vmbr0
//! ```
//!
//! Layout:
//! - `cli`: clap's definitions; pvectl's options among the `--key value` parameters.
//! - `schema`: the embedded schema of each tag: path templates, operations, OpenAPI details.
//! - `validate`: parameters checked before sending, with Proxmox's messages.
//! - `connect`: profiles, environment and `--mock`; every request, and `--debug`'s curl lines.
//! - `output`: json, json-pretty, yaml, text and table, after pvesh's `CLIFormatter`.
//! - `task`: waiting for worker tasks with a progress indicator; `--follow`.
//! - `usage`, `complete`, `config_cmd`: the `usage`, `completion` and `config` commands.
//! - `error`: exit codes (0 ok, 1 API error, 2 usage, 3 connection/TLS, 4 task failed).

mod cli;
mod complete;
mod config_cmd;
mod connect;
mod error;
mod output;
mod schema;
mod task;
mod usage;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use proxmox_sdk::reqwest::Method as HttpMethod;
use route_metadata::Method;
use serde_json::{Map, Value, json};

use crate::cli::{ApiArgs, Cli, Command, Global};
use crate::connect::{Session, Target};
use crate::error::usage_error;
use crate::output::{Format, TableOptions};
use crate::schema::{Api, Resolved, normalize_path, reply_schema};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    if args.get(1).map(String::as_str) == Some("__complete") {
        let current = args
            .get(2)
            .and_then(|arg| arg.strip_prefix("--current="))
            .unwrap_or_default();
        let previous = args.get(3..).unwrap_or_default();
        for candidate in complete::candidates(current, previous) {
            println!("{candidate}");
        }
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => ExitCode::from(error::report(&error)),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut global = cli.global;
    match cli.command {
        Command::Completion { shell } => {
            print!("{}", complete::script(shell));
            Ok(())
        }
        Command::Config(command) => {
            let path = connect::config_path(global.config.as_deref())?;
            let format = resolve_format(&global);
            config_cmd::run(command, &path, format, table_options(&global))
        }
        Command::Usage(args) => {
            let api = Api::load(&global.schema_version)?;
            let text = usage::render(
                &api,
                &args.path,
                args.command.as_deref(),
                args.verbose,
                args.returns,
            )?;
            print!("{text}");
            Ok(())
        }
        Command::Ls(args) => api_command("ls", Method::Get, &mut global, args),
        Command::Get(args) => api_command("get", Method::Get, &mut global, args),
        Command::Create(args) => api_command("create", Method::Post, &mut global, args),
        Command::Set(args) => api_command("set", Method::Put, &mut global, args),
        Command::Delete(args) => api_command("delete", Method::Delete, &mut global, args),
    }
}

/// `ls`, `get`, `create`, `set`, `delete`: resolve, validate, send, print, wait.
fn api_command(
    verb: &str,
    method: Method,
    global: &mut Global,
    args: ApiArgs,
) -> anyhow::Result<()> {
    let raw = cli::take_options(global, args.params)?;
    let api = Api::load(&global.schema_version)?;
    let resolved = api.resolve(&args.path)?;
    let operation = match resolved.node {
        None if verb == "ls" => None,
        None => return Err(usage_error(format!("no '{verb}' handler for '/'"))),
        Some(_) => Some(api.operation(&resolved.template, method).ok_or_else(|| {
            usage_error(format!("no '{verb}' handler for '{}'", resolved.template))
        })?),
    };
    let operation = operation.as_ref();
    let pairs = cli::parse_params(operation, &raw)?;
    let params = match operation {
        Some(operation) => validate::check(operation, &resolved.path_params, &pairs)?,
        None => Map::new(),
    };
    let path = normalize_path(&args.path);
    let wire_path = proxmox_sdk::path(path.split('/').filter(|segment| !segment.is_empty()));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let session = Session::open(Target {
            mock: global.mock,
            tag: api.tag,
            config: global.config.as_deref(),
            profile: global.profile.as_deref(),
            debug: global.debug,
        })
        .await?;
        let outcome = async {
            if verb == "ls" {
                return list(
                    &api, &session, &resolved, &path, &wire_path, &params, global,
                )
                .await;
            }
            let http_method = match method {
                Method::Get => HttpMethod::GET,
                Method::Post => HttpMethod::POST,
                Method::Put => HttpMethod::PUT,
                Method::Delete => HttpMethod::DELETE,
            };
            let data = session.call(http_method, &wire_path, &params).await?;
            let format = resolve_format(global);
            let schema = match format {
                Format::Table | Format::Text => api.openapi_operation(&resolved.template, method),
                _ => None,
            };
            print!(
                "{}",
                output::render(
                    &data,
                    schema.as_ref().and_then(reply_schema),
                    format,
                    table_options(global)
                )
            );
            let is_task = operation.is_some_and(|operation| operation.worker_task);
            if let Some(upid) = data
                .as_str()
                .filter(|text| is_task && text.starts_with("UPID:"))
            {
                let wait = global.follow
                    || global.wait
                    || (!global.no_wait && std::io::stdout().is_terminal());
                if wait {
                    task::wait(&session, upid, global.follow).await?;
                }
            }
            Ok(())
        }
        .await;
        session.close().await;
        outcome
    })
}

/// `ls`: the children of a path with pvesh's capabilities (`Dr`/`-r`, `w`, `c`, `d`).
async fn list(
    api: &Api,
    session: &Session,
    resolved: &Resolved<'_>,
    path: &str,
    wire_path: &str,
    params: &Map<String, Value>,
    global: &Global,
) -> anyhow::Result<()> {
    let names: Vec<String> = match resolved.node {
        None => api
            .top_level()
            .map(|node| node.path.trim_start_matches('/').to_owned())
            .collect(),
        Some(_) => {
            let doc = api.openapi_operation(&resolved.template, Method::Get);
            let property = doc
                .as_ref()
                .and_then(reply_schema)
                .and_then(|data| data.get("x-proxmox-links"))
                .and_then(Value::as_array)
                .and_then(|links| links.first())
                .and_then(|link| link.get("href"))
                .and_then(Value::as_str)
                .and_then(|href| href.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .ok_or_else(|| {
                    usage_error(format!("resource '{path}' does not define child links"))
                })?;
            let data = session.call(HttpMethod::GET, wire_path, params).await?;
            data.as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| match item.get(&property)? {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(number) => Some(number.to_string()),
                    _ => None,
                })
                .collect()
        }
    };
    let prefix = if path == "/" { "" } else { path };
    let mut rows: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let capabilities = capabilities(api, &format!("{prefix}/{name}"));
            json!({"name": name, "capabilities": capabilities})
        })
        .collect();
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let format = resolve_format(global);
    let mut options = table_options(global);
    if global.output_format.is_none() {
        options.noborder = true;
        options.noheader = true;
    }
    if matches!(format, Format::Table | Format::Text) {
        let columns = [
            output::Column::text("capabilities"),
            output::Column::text("name"),
        ];
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                vec![
                    row["capabilities"].as_str().unwrap_or_default().to_owned(),
                    row["name"].as_str().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        if format == Format::Text {
            options.noborder = true;
            options.noheader = true;
        }
        print!("{}", output::table(&columns, &cells, options));
    } else {
        print!(
            "{}",
            output::render(&Value::Array(rows), None, format, options)
        );
    }
    Ok(())
}

/// pvesh's `resource_cap`: `D` when GET lists children, `r` GET, `w` PUT, `c` POST, `d` DELETE.
fn capabilities(api: &Api, path: &str) -> String {
    let Ok(resolved) = api.resolve(path) else {
        return "-----".to_owned();
    };
    let template = resolved.template.as_str();
    let has = |method| api.has_operation(template, method);
    let mut caps = String::new();
    if has(Method::Get) {
        let lists = resolved.node.is_some_and(|node| !node.children.is_empty());
        caps.push_str(if lists { "Dr" } else { "-r" });
    } else {
        caps.push_str("--");
    }
    caps.push(if has(Method::Put) { 'w' } else { '-' });
    caps.push(if has(Method::Post) { 'c' } else { '-' });
    caps.push(if has(Method::Delete) { 'd' } else { '-' });
    caps
}

/// `--output-format`, else table on a terminal and JSON otherwise.
fn resolve_format(global: &Global) -> Format {
    global.output_format.unwrap_or_else(|| {
        if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        }
    })
}

fn table_options(global: &Global) -> TableOptions {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    TableOptions {
        noborder: global.noborder,
        noheader: global.noheader,
        human_readable: global.human_readable,
        columns: None,
        utf8: locale.contains("utf-8") || locale.contains("utf8"),
    }
}
