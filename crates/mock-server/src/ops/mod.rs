//! Operation handlers: what the mock does for each (path template, method), by Proxmox domain.
//!
//! # Shape of a handler
//!
//! A handler is a plain function registered in the route table ([`routes`]). It receives the
//! validated [`Call`] (operation, path parameters, arguments, caller) and a [`Tx`] (one
//! consistent read of the tables, the access model on demand, the ticket signer), and never the
//! whole application state:
//!
//! - a read answers `fn(&Call, &Tx) -> Result<Value, AppError>`;
//! - a write plans `fn(&Call, &Tx) -> Result<Plan, AppError>`: the complete change list,
//!   computed before anything is written, so a failing request changes nothing.
//!
//! [`run`] is the one place that executes a call: it looks the handler up, runs a read on a read
//! guard (then filters the reply for the caller), or runs a write inside
//! [`StateStore::transact`](crate::store::StateStore::transact) and, for worker operations,
//! turns the plan into a [`tasks::TaskRecord`] whose effect is applied when the task ends.
//!
//! # Modules
//!
//! - [`routes`]: THE route table, from (path template, method) to handler.
//! - [`generic`]: collections, items, config, actions and default replies for every operation
//!   without a dedicated handler, derived from the route metadata's topology.
//! - [`guest`] (types: `Kind`, `Guest`, `Power`, config files and digests), [`guests`] (create,
//!   config, power, destroy, clone, template, migrate), [`disks`], [`snapshots`], [`agent`].
//! - [`storage`] (content, uploads), [`pools`], [`backup`] (`vzdump`).
//! - [`console`]: console tickets (`vncproxy`, `termproxy`) and their verification.
//! - [`volname`]: `parse_volname` per storage plugin, with its messages.
//! - [`tasks`]: worker tasks ([`tasks::TaskRecord`]), task lists and logs.
//! - [`nodes`]: cluster and node views (`/version`, `/cluster/status`, `/cluster/resources`,
//!   node storage, network, version, guest status).
//! - [`access`]: the `/access` endpoints (login, password, users, groups, roles, ACL, TFA).

pub(crate) mod access;
pub(crate) mod agent;
pub(crate) mod backup;
pub(crate) mod console;
pub(crate) mod cpu_models;
pub(crate) mod disks;
pub(crate) mod generic;
pub(crate) mod guest;
pub(crate) mod guests;
pub(crate) mod nodes;
pub(crate) mod pools;
pub(crate) mod routes;
pub(crate) mod sdn_routing;
pub(crate) mod snapshots;
pub(crate) mod storage;
pub(crate) mod tasks;
pub(crate) mod volname;

use std::cell::OnceCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use route_metadata::{Method, Operation, PathNode};
use serde_json::{Value, json};

use crate::access::rpcenv::RpcEnv;
use crate::access::{AccessCache, AccessModel, Caller};
use crate::api::{Api, fill_template};
use crate::auth::Signer;
use crate::error::AppError;
use crate::schema::{Params, value_bool};
use crate::simulation::{Simulation, TaskDurations};
use crate::store::{Change, StateStore, Tables};
use guest::Guest;
use routes::{Handler, Routes};
use tasks::TaskRecord;

/// One validated API call.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    /// The compiled API of the schema tag.
    pub(crate) api: &'a Api,
    /// The path node.
    pub(crate) node: &'a PathNode,
    /// The operation.
    pub(crate) op: &'a Operation,
    /// Decoded path parameters, in template order.
    pub(crate) path_params: &'a [(String, String)],
    /// Validated parameters (path parameters included).
    pub(crate) args: &'a Params,
    /// Who is calling.
    pub(crate) caller: &'a Caller,
}

impl Call<'_> {
    /// A path parameter.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        crate::api::path_param(self.path_params, name)
    }

    /// The concrete path of the call (`/nodes/pve1/qemu/100/config`).
    pub(crate) fn concrete(&self) -> String {
        fill_template(&self.node.path, self.path_params)
    }

    /// The template of the call (`/nodes/{node}/qemu/{vmid}/config`).
    pub(crate) fn template(&self) -> &str {
        &self.node.path
    }

    /// A string argument, if given as a string.
    pub(crate) fn arg_str(&self, name: &str) -> Option<&str> {
        self.args.get(name).and_then(Value::as_str)
    }

    /// An argument as text (numbers and booleans printed), if given.
    pub(crate) fn arg_text(&self, name: &str) -> Option<String> {
        self.args.get(name).map(text)
    }

    /// A boolean argument, read as pve-common reads booleans: `1`/`on`/`yes`/`true` and
    /// `0`/`off`/`no`/`false` (any case), numbers by non-zero; `None` when absent or not a
    /// boolean (the validator has refused those already for boolean parameters).
    pub(crate) fn arg_bool(&self, name: &str) -> Option<bool> {
        value_bool(self.args.get(name)?)
    }

    /// A boolean argument that defaults to false.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.arg_bool(name).unwrap_or(false)
    }

    /// The user or token ID of the caller.
    pub(crate) fn user(&self) -> &str {
        &self.caller.userid
    }
}

/// What a handler sees of the state: one consistent read of the tables, the access model
/// (built on first use from the same read) and the ticket signer.
pub(crate) struct Tx<'a> {
    /// The tables, as of the start of the call (writes hold the store's write gate).
    pub(crate) tables: &'a Tables,
    /// Signs tickets and CSRF tokens (the login).
    pub(crate) signer: &'a Signer,
    access: &'a AccessCache,
    model: OnceCell<Arc<AccessModel>>,
}

impl<'a> Tx<'a> {
    /// A view of `tables`.
    pub(crate) fn new(tables: &'a Tables, access: &'a AccessCache, signer: &'a Signer) -> Self {
        Tx {
            tables,
            signer,
            access,
            model: OnceCell::new(),
        }
    }

    /// The cache of access models (for filters built per request).
    pub(crate) fn access_cache(&self) -> &AccessCache {
        self.access
    }

    /// The access model of these tables.
    pub(crate) fn access(&self) -> &AccessModel {
        self.model.get_or_init(|| self.access.model(self.tables))
    }

    /// The checks a handler makes for the caller of `call` (the access model is built only
    /// for callers other than `root@pam`).
    pub(crate) fn rpc<'s>(&'s self, call: &'s Call<'_>) -> RpcEnv<'s> {
        RpcEnv::new(call.user(), || self.access())
    }
}

/// What a write does, computed before anything is written.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Changes applied when the request is answered.
    pub(crate) now: Vec<Change>,
    /// Changes applied when the worker task ends (at once for synchronous calls).
    pub(crate) at_end: Vec<Change>,
    /// The reply of a synchronous call (worker tasks answer their UPID).
    pub(crate) reply: Value,
    /// Lines the worker task logs before `TASK OK`.
    pub(crate) log: Vec<String>,
    /// When set, the worker task fails with this message and `at_end` is not applied.
    pub(crate) task_error: Option<String>,
}

impl Plan {
    /// A plan that makes `changes` and answers `reply`.
    pub(crate) fn changes(changes: Vec<Change>, reply: Value) -> Plan {
        Plan {
            at_end: changes,
            reply,
            ..Plan::default()
        }
    }
}

/// A failure Proxmox raises inside the worker: the request still answers a UPID and the task
/// ends with the message as its exit status. Synchronous calls fail with HTTP 500.
pub(crate) fn fail(call: &Call<'_>, message: impl Into<String>) -> Result<Plan, AppError> {
    let message = message.into();
    if call.op.worker_task {
        Ok(Plan {
            task_error: Some(message.trim_end().to_owned()),
            ..Plan::default()
        })
    } else {
        Err(AppError::die(message))
    }
}

/// What [`run`] needs besides the call: the route table and the services handlers and tasks
/// use, borrowed from the application state (`crate::state::AppState::engine`), so that no
/// handler and nothing in this module sees the state itself.
#[derive(Clone, Copy)]
pub(crate) struct Engine<'a> {
    /// The route table.
    pub(crate) routes: &'a Routes,
    /// The store (its one write path runs every write).
    pub(crate) store: &'a Arc<StateStore>,
    /// The access model cache.
    pub(crate) access: &'a AccessCache,
    /// The ticket signer.
    pub(crate) signer: &'a Signer,
    /// Injected task faults.
    pub(crate) simulation: &'a Simulation,
    /// How long worker tasks run.
    pub(crate) task_durations: &'a TaskDurations,
    /// Worker PIDs.
    pub(crate) pids: &'a AtomicU32,
    /// How many finished tasks each node keeps.
    pub(crate) task_history: usize,
}

/// The `data` of a reply.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A value, serialised by the caller.
    Value(Value),
    /// JSON text written by a [`Handler::ReadJson`] handler, already filtered for the caller.
    Json(JsonText),
}

/// The JSON text of a reply's `data`, written after the opening of Proxmox's envelope
/// (`{"data":`) in the same buffer, so that the reply goes out without the text being copied
/// into another buffer (`/cluster/resources` at 10,000 guests is 3 MB).
#[derive(Debug)]
pub(crate) struct JsonText {
    buf: Vec<u8>,
}

impl JsonText {
    /// The envelope's opening.
    const OPEN: &'static [u8] = b"{\"data\":";

    /// An empty text with room for `capacity` bytes of JSON.
    pub(crate) fn with_capacity(capacity: usize) -> JsonText {
        let mut buf = Vec::with_capacity(Self::OPEN.len() + capacity + 1);
        buf.extend_from_slice(Self::OPEN);
        JsonText { buf }
    }

    /// A text holding `json`.
    pub(crate) fn from_json(json: &[u8]) -> JsonText {
        let mut text = JsonText::with_capacity(json.len());
        text.buf.extend_from_slice(json);
        text
    }

    /// The buffer to append JSON to.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The whole reply: `{"data":` + the JSON + `}`.
    pub(crate) fn into_envelope(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

/// Runs a validated call: the handler from the route table, on a read of the state (reads) or
/// inside one store transaction (writes); worker operations become tasks.
pub(crate) async fn run(
    engine: Engine<'_>,
    path_index: usize,
    call: &Call<'_>,
) -> Result<Reply, AppError> {
    let handler = engine.routes.handler(path_index, call.op.method);
    if matches!(
        handler,
        Handler::Read(_) | Handler::ReadJson(_) | Handler::GuestRead(_)
    ) {
        let tables = engine.store.read();
        let tx = Tx::new(&tables, engine.access, engine.signer);
        let value = match (handler, Guest::of(call)) {
            (Handler::GuestRead(read), Some(guest)) => read(call, &tx, &guest)?,
            (Handler::Read(read), _) => read(call, &tx)?,
            (Handler::ReadJson(read), _) => match read(call, &tx)? {
                Reply::Value(value) => value,
                json @ Reply::Json(_) => return Ok(json),
            },
            _ => generic::read(call, &tx)?,
        };
        if call.op.method != Method::Get {
            return Ok(Reply::Value(value));
        }
        return crate::access::filter::filter_reply(
            &tables,
            engine.access,
            call.caller,
            call.template(),
            call.path_params,
            value,
        )
        .map(Reply::Value);
    }
    let (reply, deferred) = engine
        .store
        .transact(|tables| {
            let tx = Tx::new(tables, engine.access, engine.signer);
            let plan = match (handler, Guest::of(call)) {
                (Handler::GuestWrite(write), Some(guest)) => write(call, &tx, &guest)?,
                (Handler::Write(write), _) => write(call, &tx)?,
                _ => generic::write(call, &tx)?,
            };
            Ok::<_, AppError>(schedule(engine, tables, call, plan))
        })
        .await?;
    if let Some(deferred) = deferred {
        tokio::spawn(deferred.finish(Arc::clone(engine.store), engine.task_history));
    }
    Ok(Reply::Value(reply))
}

/// A worker task that ends later: its record and the changes it applies when it ends.
struct Deferred {
    task: TaskRecord,
    at_end: Vec<Change>,
    delay: Duration,
}

impl Deferred {
    async fn finish(mut self, store: Arc<StateStore>, task_history: usize) {
        tokio::time::sleep(self.delay).await;
        self.task.finish();
        let mut changes = self.at_end;
        changes.push(self.task.change());
        let task = self.task;
        let node = task.node.clone();
        let finished = store
            .transact(|tables| {
                if !task.still_running(tables) {
                    // Stopped meanwhile (`DELETE .../tasks/{upid}`): no effect, no second end.
                    return Ok::<_, crate::store::StoreError>((Vec::new(), ()));
                }
                changes.extend(tasks::prune(tables, &node, task_history));
                Ok::<_, crate::store::StoreError>((changes, ()))
            })
            .await;
        if let Err(error) = finished {
            tracing::error!(%error, "finishing a task failed");
        }
    }
}

/// The changes a plan makes now, its reply, and the task that ends later (worker operations
/// with a duration).
fn schedule(
    engine: Engine<'_>,
    tables: &Tables,
    call: &Call<'_>,
    plan: Plan,
) -> (Vec<Change>, (Value, Option<Deferred>)) {
    let Plan {
        mut now,
        mut at_end,
        reply,
        log,
        task_error,
    } = plan;
    if !call.op.worker_task {
        now.extend(at_end);
        return (now, (reply, None));
    }
    let pid = engine.pids.fetch_add(1, Ordering::Relaxed);
    let mut task = TaskRecord::start(call, pid, log);
    if let Some(error) = task_error {
        task.error = Some(error);
        at_end.clear();
    }
    // Injected task faults (`crate::simulation`): the task fails and changes nothing.
    if let Some(fault) = engine
        .simulation
        .task_fault(&task.kind, &task.id, &task.node)
    {
        task.log.extend(fault.log);
        task.error = Some(fault.exitstatus);
        at_end.clear();
    }
    let reply = json!(task.upid);
    let delay = engine.task_durations.for_type(&task.kind);
    if delay.is_zero() {
        now.extend(at_end);
        task.finish();
        now.push(task.change());
        now.extend(tasks::prune(tables, &task.node, engine.task_history));
        return (now, (reply, None));
    }
    now.push(task.change());
    let deferred = Deferred {
        task,
        at_end,
        delay,
    };
    (now, (reply, Some(deferred)))
}

/// A JSON value as Proxmox prints it in a config file.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(flag) => u8::from(*flag).to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A row without its hidden (`_`-prefixed) keys.
pub(crate) fn visible(row: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    row.iter()
        .filter(|(key, _)| !key.starts_with('_'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Proxmox's "already exists" message for a kind and an ID (`pool 'p1' already exists`);
/// handlers that run inside `lock_user_config` prefix it (`create role failed: ...`).
pub(crate) fn already_exists(kind: &str, id: &str) -> String {
    format!("{kind} '{id}' already exists\n")
}
