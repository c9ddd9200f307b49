//! `GET /metrics`: guarded like `/_mock`, strict Prometheus text format, bounded labels, and
//! counters that move with traffic.

use std::collections::BTreeMap;

use mock_server::{MockServer, MockServerHandle, Store};

use crate::client;

async fn server() -> MockServerHandle {
    let dir = std::env::temp_dir().join(format!(
        "mock-metrics-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    MockServer::builder()
        .store(Store::Sqlite(dir.join("state.db")))
        .control_token("control-secret")
        .spawn()
        .await
        .unwrap()
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn root_url(server: &MockServerHandle) -> String {
    server.base_url().trim_end_matches("/api2/json").to_owned()
}

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Scrapes `/metrics` with the control token and parses it strictly.
async fn scrape(server: &MockServerHandle) -> Vec<Sample> {
    let response = client()
        .get(format!("{}/metrics", root_url(server)))
        .header("Authorization", "Bearer control-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap())
}

/// A strict parser of the Prometheus text format 0.0.4 as the mock writes it: every sample
/// belongs to a family declared by `# TYPE` before it (histograms through `_bucket`, `_sum`,
/// `_count`), names and label names are valid, label values are quoted and escaped, values are
/// numbers, a family's lines are contiguous, histogram buckets are cumulative and end with
/// `+Inf` equal to `_count`.
fn parse(text: &str) -> Vec<Sample> {
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut closed: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "the text ends with a line feed");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let keyword = words.next().unwrap();
            let name = words.next().expect("a family name").to_owned();
            let value = words.next().expect("help text or type");
            assert!(name_ok(&name), "bad family name in {line:?}");
            match keyword {
                "HELP" => {
                    if let Some(previous) = current.replace(name.clone())
                        && previous != name
                    {
                        closed.push(previous);
                    }
                    assert!(!closed.contains(&name), "family {name} is split");
                }
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram"].contains(&value),
                        "type {value}"
                    );
                    assert!(types.insert(name, value.to_owned()).is_none(), "{line}");
                }
                other => panic!("unknown comment {other:?}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "no empty lines");
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                (name.to_owned(), parse_labels(body, line))
            }
        };
        assert!(name_ok(&name), "bad metric name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then(|| base.to_owned())
            })
            .unwrap_or_else(|| name.clone());
        assert!(types.contains_key(&family), "{name} has no # TYPE");
        assert_eq!(
            current.as_deref(),
            Some(family.as_str()),
            "{line} outside its family"
        );
        if types[&family] == "counter" {
            assert!(name.ends_with("_total"), "counter {name} ends with _total");
        }
        samples.push((name, labels, value));
    }
    check_histograms(&samples, &types);
    samples
}

fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label name {name:?}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (index, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unterminated {line}"));
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                '"' => break index,
                c => value.push(c),
            }
        };
        assert!(labels.insert(name.to_owned(), value).is_none(), "{line}");
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

fn check_histograms(samples: &[Sample], types: &BTreeMap<String, String>) {
    for (family, kind) in types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (name, labels, value) in samples {
            if *name == format!("{family}_bucket") {
                let mut rest = labels.clone();
                let le = rest.remove("le").expect("le label");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                series
                    .entry(format!("{rest:?}"))
                    .or_default()
                    .push((le, *value));
            }
        }
        for (labels, buckets) in series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family}{labels}: buckets not cumulative"
            );
            let (last_le, total) = *buckets.last().unwrap();
            assert!(last_le.is_infinite(), "{family}{labels}: no +Inf bucket");
            let count = samples
                .iter()
                .find(|(name, l, _)| {
                    *name == format!("{family}_count") && format!("{l:?}") == labels
                })
                .map(|(_, _, v)| *v);
            assert_eq!(count, Some(total), "{family}{labels}: _count");
        }
    }
}

/// The value of one sample, 0 when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map_or(0.0, |(_, _, v)| *v)
}

#[tokio::test]
async fn metrics_are_guarded_like_the_control_endpoints() {
    let server = server().await;
    let url = format!("{}/metrics", root_url(&server));
    let status = client().get(&url).send().await.unwrap().status();
    assert_eq!(status, 401, "no credentials");
    let status = client()
        .get(&url)
        .header("Authorization", "Bearer wrong")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "a wrong control token");
    let status = client()
        .get(&url)
        .header("Authorization", "Bearer control-secret")
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403, "a foreign Host (DNS rebinding)");
    let status = client()
        .get(&url)
        .header("Authorization", "Bearer control-secret")
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403, "a foreign Origin");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn counters_move_with_traffic_under_bounded_labels() {
    let server = server().await;
    let before = scrape(&server).await;
    let version = [
        ("operation_id", "version"),
        ("method", "GET"),
        ("status_class", "2xx"),
    ];
    let n_version = value(&before, "proxmox_mock_http_requests_total", &version);
    let login: serde_json::Value = client()
        .post(format!("{}/access/ticket", server.base_url()))
        .form(&[("username", "root@pam"), ("password", "secret")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = login["data"]["ticket"].as_str().unwrap().to_owned();
    let csrf = login["data"]["CSRFPreventionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = format!("PVEAuthCookie={ticket}");
    for _ in 0..3 {
        let status = client()
            .get(format!("{}/version", server.base_url()))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    // An unknown path and a guest that does not exist: neither path nor ID become labels.
    let status = client()
        .get(format!("{}/no/such/path-4242", server.base_url()))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 501);
    client()
        .get(format!(
            "{}/nodes/pve1/qemu/987654/status/current",
            server.base_url()
        ))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    // A write: a group commit.
    let status = client()
        .post(format!("{}/nodes/pve1/qemu", server.base_url()))
        .header("Cookie", &cookie)
        .header("CSRFPreventionToken", &csrf)
        .form(&[("vmid", "777"), ("memory", "512")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let after = scrape(&server).await;
    assert_eq!(
        value(&after, "proxmox_mock_http_requests_total", &version),
        n_version + 3.0
    );
    let unmatched = [
        ("operation_id", "_unmatched"),
        ("method", "GET"),
        ("status_class", "5xx"),
    ];
    assert_eq!(
        value(&after, "proxmox_mock_http_requests_total", &unmatched),
        value(&before, "proxmox_mock_http_requests_total", &unmatched) + 1.0
    );
    let count = [("operation_id", "version"), ("method", "GET")];
    assert_eq!(
        value(
            &after,
            "proxmox_mock_http_request_duration_seconds_count",
            &count
        ),
        n_version + 3.0
    );
    let created = value(
        &after,
        "proxmox_mock_http_requests_total",
        &[
            ("method", "POST"),
            ("status_class", "2xx"),
            ("operation_id", "nodes_qemu_create_vm"),
        ],
    );
    assert!(
        created >= 1.0,
        "the create is counted under its operationId"
    );
    assert!(
        value(&after, "proxmox_mock_store_commit_batch_size_count", &[])
            > value(&before, "proxmox_mock_store_commit_batch_size_count", &[])
    );
    assert!(
        value(
            &after,
            "proxmox_mock_store_commit_duration_seconds_count",
            &[]
        ) >= 1.0
    );
    assert_eq!(
        value(&after, "proxmox_mock_guests", &[("type", "qemu")]),
        value(&before, "proxmox_mock_guests", &[("type", "qemu")]) + 1.0
    );
    assert!(
        value(&after, "proxmox_mock_tasks", &[]) >= 1.0,
        "the create's task"
    );
    assert!(
        after
            .iter()
            .any(|(name, _, _)| name == "proxmox_mock_store_wal_bytes")
    );
    assert_eq!(
        value(&after, "proxmox_mock_http_requests_in_flight", &[]),
        1.0,
        "the scrape itself"
    );
    // Bounded labels: no path, ID, ticket or token in any label.
    for (name, labels, _) in &after {
        for (key, label) in labels {
            for forbidden in ["987654", "4242", "/", "777", "PVE:", "secret"] {
                assert!(!label.contains(forbidden), "{name} {key}={label:?}");
            }
        }
    }
    server.shutdown().await.unwrap();
}
