//! Shell completion: small scripts for bash, zsh, fish and PowerShell that ask the binary
//! (`pvectl __complete --current=WORD PREVIOUS...`) for candidates, one per line.
//!
//! Why not clap_complete: its static scripts know the verbs and options but not the API paths,
//! and parameter names depend on the path typed before them, which its dynamic engine (an
//! unstable feature) cannot see. Candidates come from the embedded schema, so paths and
//! parameter names need no network; only `{node}`/`{vmid}`-style segments ask the server (the
//! active profile or `--mock`) for live ids, with a short timeout, and stay silent on failure.

use std::time::Duration;

use proxmox_sdk::reqwest::Method as HttpMethod;
use route_metadata::{Method, SchemaType};
use serde_json::{Map, Value};

use crate::cli::Global;
use crate::connect::{Session, Target};
use crate::schema::{Api, normalize_path, reply_schema};

/// A shell with a completion script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => {
            r#"# pvectl completion for bash: source it, or save it as
# ~/.local/share/bash-completion/completions/pvectl
_pvectl() {
    local IFS=$'\n'
    local cur="${COMP_WORDS[COMP_CWORD]}"
    COMPREPLY=($(pvectl __complete "--current=$cur" "${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null))
}
complete -o default -F _pvectl pvectl
"#
        }
        Shell::Zsh => {
            r#"#compdef pvectl
# pvectl completion for zsh: save it as _pvectl in a directory of $fpath, or source it after
# compinit.
_pvectl() {
    local -a candidates
    candidates=("${(@f)$(pvectl __complete "--current=${words[CURRENT]}" "${(@)words[2,CURRENT-1]}" 2>/dev/null)}")
    candidates=(${candidates:#})
    (( ${#candidates} )) && compadd -Q -- "${candidates[@]}"
}
if [ "$funcstack[1]" = "_pvectl" ]; then
    _pvectl "$@"
else
    compdef _pvectl pvectl
fi
"#
        }
        Shell::Fish => {
            r#"# pvectl completion for fish: save it as ~/.config/fish/completions/pvectl.fish
function __pvectl_complete
    set -l current (commandline -ct)
    set -l previous (commandline -opc)
    pvectl __complete "--current=$current" $previous[2..-1] 2>/dev/null
end
complete -c pvectl -f -a '(__pvectl_complete)'
"#
        }
        Shell::Powershell => {
            r#"# pvectl completion for PowerShell: add it to $PROFILE
Register-ArgumentCompleter -Native -CommandName pvectl -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $previous = @($commandAst.CommandElements | Select-Object -Skip 1 |
        Where-Object { $_.Extent.EndOffset -lt $cursorPosition -or $_.ToString() -ne $wordToComplete } |
        ForEach-Object { $_.ToString() })
    pvectl __complete "--current=$wordToComplete" @previous 2>$null | ForEach-Object {
        [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
    }
}
"#
        }
    }
}

const VERBS: [&str; 8] = [
    "ls",
    "get",
    "create",
    "set",
    "delete",
    "usage",
    "config",
    "completion",
];
const GLOBAL_FLAGS: [&str; 9] = [
    "--mock",
    "--debug",
    "--noborder",
    "--noheader",
    "--human-readable",
    "--wait",
    "--no-wait",
    "--follow",
    "--help",
];
const GLOBAL_VALUED: [&str; 4] = [
    "--config",
    "--profile",
    "--schema-version",
    "--output-format",
];
const FORMATS: [&str; 5] = ["json", "json-pretty", "yaml", "text", "table"];

/// Candidates for `current`, given the words before it (without the program name).
pub fn candidates(current: &str, previous: &[String]) -> Vec<String> {
    let mut global = Global::default();
    let mut positionals: Vec<&str> = Vec::new();
    let mut index = 0;
    while index < previous.len() {
        let word = previous[index].as_str();
        let (name, inline) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (word, None),
        };
        if GLOBAL_VALUED.contains(&name) {
            let value = inline
                .map(str::to_owned)
                .or_else(|| previous.get(index + 1).cloned());
            match name {
                "--schema-version" => {
                    global.schema_version = value.clone().unwrap_or_default();
                }
                "--profile" => global.profile = value.clone(),
                "--config" => global.config = value.clone().map(Into::into),
                _ => {}
            }
            index += if inline.is_some() { 1 } else { 2 };
            continue;
        }
        if word == "--mock" {
            global.mock = true;
        }
        if !word.starts_with('-') || positionals.len() >= 2 {
            positionals.push(word);
        }
        index += 1;
    }
    let last = previous.last().map(String::as_str);
    if last.is_some_and(|last| GLOBAL_VALUED.contains(&last)) {
        return match last {
            Some("--output-format") => filter(FORMATS, current),
            Some("--schema-version") => {
                let tags = ["latest"]
                    .into_iter()
                    .chain(mock_server::TAGS.iter().copied());
                filter(tags, current)
            }
            Some("--profile") => filter(profile_names(&global).iter().map(String::as_str), current),
            _ => Vec::new(),
        };
    }
    if global.schema_version.is_empty() {
        global.schema_version = "latest".to_owned();
    }

    let Some(verb) = positionals.first().copied() else {
        if current.starts_with('-') {
            return filter(GLOBAL_FLAGS.iter().chain(&GLOBAL_VALUED).copied(), current);
        }
        return filter(VERBS, current);
    };
    match verb {
        "completion" if positionals.len() == 1 => {
            filter(["bash", "zsh", "fish", "powershell"], current)
        }
        "config" if positionals.len() == 1 => {
            filter(["add", "list", "use", "remove", "show"], current)
        }
        "config"
            if positionals.len() == 2 && matches!(positionals[1], "use" | "remove" | "show") =>
        {
            filter(profile_names(&global).iter().map(String::as_str), current)
        }
        "ls" | "get" | "create" | "set" | "delete" | "usage" => {
            let Ok(api) = Api::load(&global.schema_version) else {
                return Vec::new();
            };
            if positionals.len() == 1 {
                return complete_path(&api, &global, current);
            }
            complete_params(&api, verb, positionals[1], last, current)
        }
        _ => Vec::new(),
    }
}

/// Paths one segment deeper than the typed prefix.
fn complete_path(api: &Api, global: &Global, current: &str) -> Vec<String> {
    let typed = if current.is_empty() { "/" } else { current };
    let (parent, partial) = match typed.rfind('/') {
        Some(slash) => (&typed[..slash], &typed[slash + 1..]),
        None => ("", typed),
    };
    let parent = normalize_path(parent);
    let prefix = if parent == "/" {
        String::new()
    } else {
        parent.clone()
    };
    let Ok(resolved) = api.resolve(&parent) else {
        return Vec::new();
    };
    let children: Vec<String> = match resolved.node {
        None => api.top_level().map(|node| node.path.clone()).collect(),
        Some(node) => node.children.clone(),
    };
    let mut out = Vec::new();
    for child in children {
        let last = child.rsplit('/').next().unwrap_or_default();
        if last.starts_with('{') {
            for id in live_ids(api, global, &parent, &resolved.template) {
                out.push(format!("{prefix}/{id}"));
            }
        } else {
            out.push(format!("{prefix}/{last}"));
        }
    }
    out.sort();
    out.dedup();
    out.retain(|candidate| {
        candidate
            .rsplit('/')
            .next()
            .is_some_and(|segment| segment.starts_with(partial))
    });
    out
}

/// The ids of the members of the collection at `parent` (node names, vmids, storages), asked
/// from the server with a short timeout; nothing without a configured connection.
fn live_ids(api: &Api, global: &Global, parent: &str, template: &str) -> Vec<String> {
    let Some(doc) = api.openapi_operation(template, Method::Get) else {
        return Vec::new();
    };
    let Some(property) = reply_schema(&doc)
        .and_then(|data| data.get("x-proxmox-links"))
        .and_then(Value::as_array)
        .and_then(|links| links.first())
        .and_then(|link| link.get("href"))
        .and_then(Value::as_str)
        .and_then(|href| href.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
    else {
        return Vec::new();
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let lookup = async {
        let target = Target {
            mock: global.mock,
            tag: api.tag,
            config: global.config.as_deref(),
            profile: global.profile.as_deref(),
            debug: false,
        };
        let session = Session::open(target).await.ok()?;
        let data = session
            .call(HttpMethod::GET, parent, &Map::new())
            .await
            .ok();
        session.close().await;
        data
    };
    let Ok(Some(data)) =
        runtime.block_on(async { tokio::time::timeout(Duration::from_millis(1500), lookup).await })
    else {
        return Vec::new();
    };
    let mut ids: Vec<String> = data
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| match item.get(&property)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

/// Parameter names of the verb's operation at `path`, or values for the parameter before.
fn complete_params(
    api: &Api,
    verb: &str,
    path: &str,
    last: Option<&str>,
    current: &str,
) -> Vec<String> {
    if verb == "usage" {
        if last == Some("--command") {
            return filter(["get", "set", "create", "delete"], current);
        }
        return filter(["--verbose", "--returns", "--command"], current);
    }
    let method = match verb {
        "create" => Method::Post,
        "set" => Method::Put,
        "delete" => Method::Delete,
        _ => Method::Get,
    };
    let Ok(resolved) = api.resolve(path) else {
        return Vec::new();
    };
    let Some(operation) = api.operation(&resolved.template, method) else {
        return Vec::new();
    };
    let operation = &operation;
    if let Some(name) = last.and_then(|last| last.strip_prefix("--"))
        && !current.starts_with('-')
    {
        if name == "output-format" {
            return filter(FORMATS, current);
        }
        if let Some(schema) = operation.parameter(name) {
            if schema.kind() == SchemaType::Boolean {
                return filter(["0", "1"], current);
            }
            if let Some(values) = &schema.enum_values {
                let texts: Vec<String> = values
                    .iter()
                    .map(|value| match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                return filter(texts.iter().map(String::as_str), current);
            }
            return Vec::new();
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (name, schema) in &operation.parameters {
        if operation.path_params.contains(name) {
            continue;
        }
        match &schema.family {
            Some(family) => {
                names.extend((0..family.count).map(|index| format!("--{}{index}", family.prefix)));
            }
            None => names.push(format!("--{name}")),
        }
    }
    names.extend(
        [
            "--output-format",
            "--noborder",
            "--noheader",
            "--human-readable",
        ]
        .iter()
        .map(|flag| (*flag).to_owned()),
    );
    if operation.worker_task {
        names.extend(
            ["--wait", "--no-wait", "--follow"]
                .iter()
                .map(|flag| (*flag).to_owned()),
        );
    }
    filter(names.iter().map(String::as_str), current)
}

fn profile_names(global: &Global) -> Vec<String> {
    let Ok(path) = crate::connect::config_path(global.config.as_deref()) else {
        return Vec::new();
    };
    proxmox_sdk::profile::Config::load_or_default(&path)
        .map(|config| config.profiles.into_keys().collect())
        .unwrap_or_default()
}

fn filter<'a>(items: impl IntoIterator<Item = &'a str>, current: &str) -> Vec<String> {
    items
        .into_iter()
        .filter(|item| item.starts_with(current))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &[&str], current: &str) -> Vec<String> {
        let previous: Vec<String> = line.iter().map(|word| (*word).to_owned()).collect();
        candidates(current, &previous)
    }

    #[test]
    fn verbs_paths_and_params() {
        assert_eq!(complete(&[], "cr"), ["create"]);
        assert!(complete(&["get"], "/").contains(&"/nodes".to_owned()));
        assert_eq!(complete(&["get"], "/ver"), ["/version"]);
        assert!(
            complete(&["--schema-version", "8.4", "ls"], "/clu").contains(&"/cluster".to_owned())
        );
        let params = complete(&["create", "/nodes/pve1/qemu"], "--mem");
        assert_eq!(params, ["--memory"]);
        assert!(complete(&["create", "/nodes/pve1/qemu"], "--net").contains(&"--net31".to_owned()));
        assert_eq!(
            complete(&["get", "/nodes", "--output-format"], "js"),
            ["json", "json-pretty"]
        );
        assert_eq!(complete(&["completion"], "z"), ["zsh"]);
        assert_eq!(
            complete(&["usage", "/nodes", "--command"], "cr"),
            ["create"]
        );
    }
}
