//! Profiles in the config file: add/list/use/remove/show, permissions, overrides.

use std::os::unix::fs::PermissionsExt;

use predicates::prelude::*;

use crate::{Env, stdout};

#[test]
fn profiles_round_trip_without_showing_secrets() {
    let env = Env::new();
    let url = env.server.base_url();
    env.bare()
        .args([
            "config",
            "add",
            "lab",
            "--url",
            &url,
            "--user",
            "root@pam",
            "--password",
            "-",
        ])
        .write_stdin("secret\n")
        .assert()
        .success();
    let file = env.config_file();
    let mode = std::fs::metadata(&file)
        .expect("config written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    env.bare()
        .args(["get", "/version"])
        .assert()
        .success()
        .stdout(predicate::str::contains("9.2.0"));
    env.bare()
        .args([
            "config",
            "add",
            "other",
            "--url",
            "https://pve.invalid:8006",
        ])
        .args([
            "--token-id",
            "root@pam!ci",
            "--token-secret",
            "tok-secret-value",
        ])
        .assert()
        .success();
    let listed = env
        .bare()
        .args(["config", "list", "--output-format", "text"])
        .assert()
        .success();
    let text = stdout(listed.get_output());
    assert_eq!(
        text,
        format!(
            "lab   password of root@pam 1       {url}\nother token root@pam!ci    0       https://pve.invalid:8006\n"
        )
    );
    let shown = env
        .bare()
        .args(["config", "show", "other", "--output-format", "json"])
        .assert()
        .success();
    let text = stdout(shown.get_output());
    assert!(text.contains("\"token_secret\":\"********\""), "{text}");
    assert!(!text.contains("tok-secret-value"), "{text}");

    // The current profile is lab; --profile and PROXMOX_PROFILE pick another.
    env.bare()
        .args(["--profile", "other", "get", "/version"])
        .assert()
        .code(3);
    env.bare()
        .env("PROXMOX_PROFILE", "other")
        .args(["get", "/version"])
        .assert()
        .code(3);
    // Variables win over the file.
    env.bare()
        .env("PROXMOX_API_URL", &url)
        .args(["--profile", "other", "get", "/version"])
        .env("PROXMOX_API_USER", "root@pam")
        .env("PROXMOX_API_PASSWORD", "secret")
        .assert()
        .success();
    env.bare()
        .args(["--profile", "lba", "get", "/version"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean 'lab'"));

    env.bare()
        .args(["config", "use", "other"])
        .assert()
        .success();
    env.bare().args(["get", "/version"]).assert().code(3);
    env.bare()
        .args(["config", "remove", "other"])
        .assert()
        .success();
    env.bare().args(["config", "use", "other"]).assert().code(2);
    env.bare().args(["config", "use", "lab"]).assert().success();

    // A file others can read still works, with a warning.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    env.bare()
        .args(["get", "/version"])
        .assert()
        .success()
        .stderr(predicate::str::contains("readable by other users"));

    // --config points elsewhere.
    let elsewhere = env.home.join("elsewhere.yaml");
    env.bare()
        .arg("--config")
        .arg(&elsewhere)
        .args([
            "config",
            "add",
            "x",
            "--url",
            &url,
            "--token-id",
            "a@pve!b",
            "--token-secret",
            "c",
        ])
        .assert()
        .success();
    assert!(elsewhere.exists());
}
