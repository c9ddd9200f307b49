//! Every verb and output format, validation before sending, exit codes, `--debug`, `--mock`.

use predicates::prelude::*;
use serde_json::Value;

use crate::{Env, stderr, stdout};

#[test]
fn every_verb() {
    let env = Env::new();
    let nodes = env.pvectl().args(["ls", "/nodes"]).assert().success();
    let listed: Value =
        serde_json::from_slice(&nodes.get_output().stdout).expect("JSON when piped");
    assert_eq!(
        listed,
        serde_json::json!([
            {"capabilities": "Dr---", "name": "pve1"},
            {"capabilities": "Dr---", "name": "pve2"}
        ])
    );
    env.pvectl()
        .args(["get", "/version"])
        .assert()
        .success()
        .stdout("{\"release\":\"9.2\",\"repoid\":\"c0ffee42\",\"version\":\"9.2.0\"}\n");
    env.pvectl()
        .args(["create", "/pools", "--poolid", "lab", "--comment", "first"])
        .assert()
        .success();
    env.pvectl()
        .args(["set", "/pools/lab", "--comment", "second"])
        .assert()
        .success();
    env.pvectl()
        .args(["get", "/pools/lab", "--output-format", "json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"comment\":\"second\""));
    env.pvectl()
        .args(["delete", "/pools/lab"])
        .assert()
        .success();
    env.pvectl()
        .args(["get", "/pools/lab"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("lab"));
    env.pvectl()
        .args(["usage", "/nodes/{node}/qemu", "--command", "create"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "USAGE: pvectl create /nodes/{node}/qemu --vmid <integer> (100 - 999999999) [OPTIONS]\n",
        ));
    env.pvectl()
        .args(["usage", "/nodes/pve1/qemu", "--verbose", "--command", "get"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--full")
                .and(predicate::str::contains("RETURNS: array of objects")),
        );
}

#[test]
fn output_formats() {
    let env = Env::new();
    let check = |args: &[&str], expected: &str| {
        let assert = env.pvectl().args(args).assert().success();
        assert_eq!(stdout(assert.get_output()), expected, "{args:?}");
    };
    check(
        &["get", "/version", "--output-format", "text"],
        "release 9.2\nrepoid  c0ffee42\nversion 9.2.0\n",
    );
    check(
        &["get", "/version", "--output-format", "table"],
        "+---------+----------+\n\
         | key     | value    |\n\
         +=========+==========+\n\
         | release | 9.2      |\n\
         +---------+----------+\n\
         | repoid  | c0ffee42 |\n\
         +---------+----------+\n\
         | version | 9.2.0    |\n\
         +---------+----------+\n",
    );
    check(
        &["get", "/version", "--output-format", "table", "--noborder"],
        "key     value\nrelease 9.2\nrepoid  c0ffee42\nversion 9.2.0\n",
    );
    check(
        &["get", "/version", "--output-format", "table", "--noheader"],
        "+---------+----------+\n\
         | release | 9.2      |\n\
         +---------+----------+\n\
         | repoid  | c0ffee42 |\n\
         +---------+----------+\n\
         | version | 9.2.0    |\n\
         +---------+----------+\n",
    );
    check(
        &["get", "/version", "--output-format", "json-pretty"],
        "{\n  \"release\": \"9.2\",\n  \"repoid\": \"c0ffee42\",\n  \"version\": \"9.2.0\"\n}\n",
    );
    check(
        &["get", "/version", "--output-format", "yaml"],
        "release: '9.2'\nrepoid: c0ffee42\nversion: 9.2.0\n",
    );
    for (pool, comment) in [("b-pool", "second"), ("a-pool", "first")] {
        env.pvectl()
            .args(["create", "/pools", "--poolid", pool, "--comment", comment])
            .assert()
            .success();
    }
    check(
        &["get", "/pools", "--output-format", "table"],
        "+--------+---------+---------+\n\
         | poolid | comment | members |\n\
         +========+=========+=========+\n\
         | a-pool | first   |         |\n\
         +--------+---------+---------+\n\
         | b-pool | second  |         |\n\
         +--------+---------+---------+\n",
    );
    check(
        &["get", "/pools", "--output-format", "text"],
        "a-pool first\nb-pool second\n",
    );
    check(
        &["ls", "/", "--output-format", "text"],
        "Dr---        access\nDr---        cluster\nDr---        nodes\nDrwcd        pools\nDr-c-        storage\n-r---        version\n",
    );
    let human = env
        .pvectl()
        .args([
            "get",
            "/nodes",
            "--output-format",
            "text",
            "--human-readable",
        ])
        .assert()
        .success();
    assert!(
        stdout(human.get_output()).contains(" GiB"),
        "{}",
        stdout(human.get_output())
    );
}

#[test]
fn validation_before_sending() {
    let env = Env::new();
    let assert = env
        .pvectl()
        .args([
            "create",
            "/nodes/pve1/qemu",
            "--vmid",
            "abc",
            "--memroy",
            "2048",
        ])
        .args(["--net0", "virtio,bridg=vmbr0"])
        .assert()
        .code(2);
    assert_eq!(
        stderr(assert.get_output()),
        "400 Parameter verification failed.\n\
         memroy: property is not defined in schema and the schema does not allow additional properties (did you mean '--memory'?)\n\
         net0: invalid format - invalid key in comma-separated list property: bridg (did you mean 'bridge'?)\n\
         vmid: type check ('integer') failed - got 'abc'\n"
    );
    env.pvectl()
        .args(["create", "/nodes/pve1/qemu"])
        .assert()
        .code(2)
        .stderr("400 Parameter verification failed.\nvmid: property is missing and it is not optional\n");
    env.pvectl()
        .args(["get", "/nodes/pve1/qemux"])
        .assert()
        .code(2)
        .stderr("no such resource '/nodes/pve1/qemux' (did you mean '/nodes/{node}/qemu'?)\n");
    env.pvectl()
        .args(["delete", "/version"])
        .assert()
        .code(2)
        .stderr("no 'delete' handler for '/version'\n");
    env.pvectl()
        .args(["get", "/version", "--output-format", "xml"])
        .assert()
        .code(2);
    env.pvectl().args(["frobnicate"]).assert().code(2);
    env.pvectl()
        .args(["--schema-version", "7.0", "get", "/version"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown schema version '7.0'"));
    // 8.4 has no /cluster/sdn/fabrics; 9.1 does.
    env.pvectl()
        .args(["--schema-version", "8.4", "usage", "/cluster/sdn/fabrics"])
        .assert()
        .code(2);
    env.pvectl()
        .args(["--schema-version", "9.1", "usage", "/cluster/sdn/fabrics"])
        .assert()
        .success();
}

#[test]
fn exit_codes_for_api_and_connection_errors() {
    let env = Env::new();
    env.pvectl()
        .args(["get", "/nodes/pve1/qemu/999/config"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("500 "));
    env.pvectl()
        .env("PROXMOX_API_PASSWORD", "wrong")
        .args(["get", "/version"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong").not());
    env.bare()
        .env("PROXMOX_API_URL", "http://127.0.0.1:1")
        .env("PROXMOX_API_TOKEN_ID", "root@pam!x")
        .env("PROXMOX_API_TOKEN_SECRET", "hidden-secret")
        .args(["get", "/version"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("hidden-secret").not());
    env.bare()
        .args(["get", "/version"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--mock"));
}

#[test]
fn debug_prints_curl_without_secrets() {
    let env = Env::new();
    let assert = env
        .pvectl()
        .args([
            "--debug",
            "create",
            "/access/users",
            "--userid",
            "ann@pve",
            "--password",
            "hunter2-secret",
        ])
        .assert()
        .success();
    let text = stderr(assert.get_output());
    assert!(
        text.contains("curl -X POST -b 'PVEAuthCookie=<redacted>'"),
        "{text}"
    );
    assert!(text.contains("\"password\":\"<redacted>\""), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("secret"),
        "{text}"
    );
}

#[test]
fn mock_needs_nothing() {
    let env = Env::new();
    let assert = env
        .bare()
        .args(["--mock", "ls", "/nodes"])
        .assert()
        .success();
    assert!(stdout(assert.get_output()).contains("pve1"));
    env.bare()
        .args(["--mock", "--schema-version", "8.4", "get", "/version"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"release\":\"8.4\""));
    env.bare()
        .args([
            "--mock",
            "get",
            "/nodes/pve1/qemu",
            "--full",
            "--output-format",
            "json",
        ])
        .assert()
        .success();
}
