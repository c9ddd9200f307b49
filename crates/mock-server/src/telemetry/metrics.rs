//! The counters behind `GET /metrics` and their Prometheus text rendering (exposition format
//! 0.0.4), written by hand rather than with a metrics crate.
//!
//! Why by hand: every series the mock exports is known when it starts (one slot per operation of
//! the tag, a few fixed slots for requests that match no operation), so a request only adds to
//! atomics at a fixed index: no label hashing, no lock, no allocation. A registry crate
//! (`prometheus-client`'s `Family`) would hash the label set under a lock on every request, and
//! the text format is a few dozen lines to write. The module depends on `std` only, so the store
//! records its commits here too.
//!
//! Labels are bounded: an operation is named by its operationId (a fixed set per tag), a
//! request that matches none by one of two fixed names ([`UNMATCHED`], [`OTHER`]) and the method
//! by one of five values. Raw paths, IDs and parameters never become labels.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// `operation_id` of an `/api2` request that matches no operation (unknown path or method, a
/// malformed path, a request refused before routing).
pub(crate) const UNMATCHED: &str = "_unmatched";
/// `operation_id` of a request outside `/api2` (`/healthz`, `/openapi.json`, `/_mock/...`,
/// `/metrics`).
pub(crate) const OTHER: &str = "_other";

/// Upper bounds (in nanoseconds) of the request and commit latency buckets: 100 µs to 10 s.
const LATENCY_BOUNDS_NS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the commit batch size buckets (requests committed together).
const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// The method labels; anything else is `other`.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "other"];

/// The status class labels, `1xx` to `5xx` (anything above 599, such as nothing, counts as `5xx`).
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A histogram with fixed bounds: a count per bucket (not cumulative; the rendering sums them),
/// the sum of the observed values in integer units and the count.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [u64],
    /// One more than `bounds`: the last one counts what is above every bound.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// A latency histogram (observed in nanoseconds, rendered in seconds).
    pub(crate) fn latency() -> Histogram {
        Histogram::new(LATENCY_BOUNDS_NS)
    }

    /// A histogram of commit batch sizes.
    pub(crate) fn batch_sizes() -> Histogram {
        Histogram::new(BATCH_BOUNDS)
    }

    /// Adds one observation.
    pub(crate) fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    /// Adds one duration.
    pub(crate) fn observe_duration(&self, duration: Duration) {
        self.observe(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    #[cfg(test)]
    fn count(&self) -> u64 {
        self.buckets.iter().map(|bucket| bucket.load(Relaxed)).sum()
    }

    /// The `_bucket`, `_sum` and `_count` lines; `labels` is empty or ends with a comma.
    fn render(&self, out: &mut String, name: &str, labels: &str, scale: f64) {
        let mut cumulative = 0u64;
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            match self.bounds.get(index) {
                Some(bound) => {
                    let le = *bound as f64 * scale;
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum.load(Relaxed) as f64 * scale;
        let bare = labels.trim_end_matches(',');
        if bare.is_empty() {
            let _ = writeln!(out, "{name}_sum {sum}");
            let _ = writeln!(out, "{name}_count {cumulative}");
        } else {
            let _ = writeln!(out, "{name}_sum{{{bare}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{bare}}} {cumulative}");
        }
    }
}

/// What one label set of requests counts.
#[derive(Debug)]
struct RequestStats {
    by_class: [AtomicU64; 5],
    latency: Histogram,
}

impl RequestStats {
    fn new() -> RequestStats {
        RequestStats {
            by_class: Default::default(),
            latency: Histogram::latency(),
        }
    }

    fn is_empty(&self) -> bool {
        self.by_class.iter().all(|count| count.load(Relaxed) == 0)
    }
}

/// Which slot a finished request counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestLabel {
    /// An operation, by its index in the tag's metadata.
    Operation(usize),
    /// An `/api2` request that matched no operation, by method.
    Unmatched,
    /// A request outside `/api2`.
    Other,
}

/// The request metrics of one server: a slot per operation, then per method the unmatched and
/// the other requests.
#[derive(Debug)]
pub(crate) struct RequestMetrics {
    slots: Box<[RequestStats]>,
    n_operations: usize,
    in_flight: AtomicI64,
}

/// The index of a method label in [`METHODS`].
pub(crate) fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::POST => 1,
        http::Method::PUT => 2,
        http::Method::DELETE => 3,
        _ => 4,
    }
}

impl RequestMetrics {
    /// Slots for `n_operations` operations.
    pub(crate) fn new(n_operations: usize) -> RequestMetrics {
        RequestMetrics {
            slots: (0..n_operations + 2 * METHODS.len())
                .map(|_| RequestStats::new())
                .collect(),
            n_operations,
            in_flight: AtomicI64::new(0),
        }
    }

    /// Counts a request in flight; the caller pairs it with one [`RequestMetrics::leave`] (the
    /// observation layer does, when its response future is dropped).
    pub(crate) fn arrive(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// Counts a request that [`RequestMetrics::arrive`] counted as no longer in flight.
    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Counts a finished request.
    pub(crate) fn observe(
        &self,
        label: RequestLabel,
        method: usize,
        status: u16,
        elapsed: Duration,
    ) {
        let slot = match label {
            RequestLabel::Operation(index) if index < self.n_operations => index,
            RequestLabel::Operation(_) | RequestLabel::Unmatched => self.n_operations + method,
            RequestLabel::Other => self.n_operations + METHODS.len() + method,
        };
        let Some(stats) = self.slots.get(slot) else {
            return;
        };
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        stats.by_class[class].fetch_add(1, Relaxed);
        stats.latency.observe_duration(elapsed);
    }

    /// Renders the request families. `operation` names an operation index: its operationId and
    /// method.
    pub(crate) fn render<'a>(
        &self,
        out: &mut String,
        operation: impl Fn(usize) -> Option<(&'a str, &'a str)>,
    ) {
        // Label sets of the slots that have counted anything.
        let mut used = Vec::new();
        for (slot, stats) in self.slots.iter().enumerate() {
            if stats.is_empty() {
                continue;
            }
            let (operation_id, method) = if slot < self.n_operations {
                match operation(slot) {
                    Some(names) => names,
                    None => continue,
                }
            } else {
                let rest = slot - self.n_operations;
                let name = if rest < METHODS.len() {
                    UNMATCHED
                } else {
                    OTHER
                };
                (name, METHODS[rest % METHODS.len()])
            };
            let mut labels = String::new();
            let _ = write!(
                labels,
                "operation_id=\"{}\",method=\"{}\",",
                escape(operation_id),
                escape(method)
            );
            used.push((labels, stats));
        }
        family(
            out,
            "proxmox_mock_http_requests_total",
            "counter",
            "HTTP requests answered, by operationId, method and status class.",
        );
        for (labels, stats) in &used {
            for (class, count) in CLASSES.iter().zip(&stats.by_class) {
                let count = count.load(Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "proxmox_mock_http_requests_total{{{labels}status_class=\"{class}\"}} {count}"
                    );
                }
            }
        }
        family(
            out,
            "proxmox_mock_http_request_duration_seconds",
            "histogram",
            "Time from the request head to the reply, by operationId and method.",
        );
        for (labels, stats) in &used {
            stats.latency.render(
                out,
                "proxmox_mock_http_request_duration_seconds",
                labels,
                1e-9,
            );
        }
        family(
            out,
            "proxmox_mock_http_requests_in_flight",
            "gauge",
            "HTTP requests being answered.",
        );
        let _ = writeln!(
            out,
            "proxmox_mock_http_requests_in_flight {}",
            self.in_flight.load(Relaxed)
        );
    }
}

/// The store's commit statistics, written by its writer thread.
#[derive(Debug)]
pub(crate) struct CommitMetrics {
    /// How long each group commit took (nanoseconds).
    pub(crate) latency: Histogram,
    /// How many requests each group commit carried.
    pub(crate) batch_sizes: Histogram,
    /// WAL checkpoints run by the store's checkpoint thread.
    pub(crate) checkpoints: std::sync::atomic::AtomicU64,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            latency: Histogram::latency(),
            batch_sizes: Histogram::batch_sizes(),
            checkpoints: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl CommitMetrics {
    /// Renders the commit families.
    pub(crate) fn render(&self, out: &mut String) {
        family(
            out,
            "proxmox_mock_store_commit_duration_seconds",
            "histogram",
            "Time of each SQLite group commit.",
        );
        self.latency
            .render(out, "proxmox_mock_store_commit_duration_seconds", "", 1e-9);
        family(
            out,
            "proxmox_mock_store_commit_batch_size",
            "histogram",
            "Requests committed together by each SQLite group commit.",
        );
        self.batch_sizes
            .render(out, "proxmox_mock_store_commit_batch_size", "", 1.0);
        family(
            out,
            "proxmox_mock_store_checkpoints_total",
            "counter",
            "WAL checkpoints run beside the writer (off the commit path).",
        );
        let _ = writeln!(
            out,
            "proxmox_mock_store_checkpoints_total {}",
            self.checkpoints.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// Point-in-time values read from the state when `/metrics` is scraped.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Size of the SQLite WAL file in bytes (`None`: the memory store, or no WAL file).
    pub(crate) wal_bytes: Option<u64>,
    /// Guests by type (`qemu`, `lxc`).
    pub(crate) guests: [(&'static str, usize); 2],
    /// Tasks the nodes keep (running and finished).
    pub(crate) tasks: usize,
}

impl Snapshot {
    /// Renders the gauges.
    pub(crate) fn render(&self, out: &mut String) {
        if let Some(bytes) = self.wal_bytes {
            family(
                out,
                "proxmox_mock_store_wal_bytes",
                "gauge",
                "Size of the SQLite write-ahead log.",
            );
            let _ = writeln!(out, "proxmox_mock_store_wal_bytes {bytes}");
        }
        family(out, "proxmox_mock_guests", "gauge", "Guests, by type.");
        for (kind, count) in self.guests {
            let _ = writeln!(out, "proxmox_mock_guests{{type=\"{kind}\"}} {count}");
        }
        family(
            out,
            "proxmox_mock_tasks",
            "gauge",
            "Worker tasks the nodes keep, running and finished.",
        );
        let _ = writeln!(out, "proxmox_mock_tasks {}", self.tasks);
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let histogram = Histogram::batch_sizes();
        for value in [1, 2, 3, 600] {
            histogram.observe(value);
        }
        let mut out = String::new();
        histogram.render(&mut out, "b", "", 1.0);
        assert!(out.contains("b_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"2\"} 2\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"4\"} 3\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"512\"} 3\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("b_sum 606\n"), "{out}");
        assert!(out.contains("b_count 4\n"), "{out}");
        assert_eq!(histogram.count(), 4);
    }

    #[test]
    fn requests_are_counted_under_bounded_labels() {
        let metrics = RequestMetrics::new(2);
        metrics.observe(
            RequestLabel::Operation(1),
            0,
            200,
            Duration::from_micros(50),
        );
        metrics.observe(RequestLabel::Operation(1), 0, 404, Duration::from_secs(20));
        metrics.observe(RequestLabel::Operation(7), 1, 501, Duration::ZERO);
        metrics.observe(RequestLabel::Other, 4, 200, Duration::ZERO);
        metrics.arrive();
        let mut out = String::new();
        metrics.render(&mut out, |index| {
            (index == 1).then_some(("version_get", "GET"))
        });
        for line in [
            "proxmox_mock_http_requests_total{operation_id=\"version_get\",method=\"GET\",status_class=\"2xx\"} 1",
            "proxmox_mock_http_requests_total{operation_id=\"version_get\",method=\"GET\",status_class=\"4xx\"} 1",
            "proxmox_mock_http_requests_total{operation_id=\"_unmatched\",method=\"POST\",status_class=\"5xx\"} 1",
            "proxmox_mock_http_requests_total{operation_id=\"_other\",method=\"other\",status_class=\"2xx\"} 1",
            "proxmox_mock_http_request_duration_seconds_bucket{operation_id=\"version_get\",method=\"GET\",le=\"0.0001\"} 1",
            "proxmox_mock_http_request_duration_seconds_bucket{operation_id=\"version_get\",method=\"GET\",le=\"+Inf\"} 2",
            "proxmox_mock_http_request_duration_seconds_count{operation_id=\"version_get\",method=\"GET\"} 2",
            "proxmox_mock_http_requests_in_flight 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain"), "plain");
    }
}
