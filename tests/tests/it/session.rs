//! A plain HTTP client session the way curl or proxmoxer talk to Proxmox: form bodies, the
//! `PVEAuthCookie` cookie with `CSRFPreventionToken`, or an API token; UPIDs polled until they stop.

use std::time::Duration;

use mock_server::MockServerHandle;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::http_client;

/// A logged-in session (ticket cookie plus CSRF token) or a token session.
pub struct Session {
    base: String,
    http: reqwest::Client,
    auth: Auth,
}

pub enum Auth {
    Ticket { ticket: String, csrf: String },
    Token(String),
}

impl Session {
    pub async fn login(server: &MockServerHandle) -> Session {
        let base = server.base_url();
        let http = http_client();
        let response = http
            .post(format!("{base}/access/ticket"))
            .form(&[("username", "root@pam"), ("password", "secret")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        assert!(!text.contains("secret"), "the password is never echoed");
        let reply: Value = serde_json::from_str(&text).unwrap();
        let data = &reply["data"];
        assert_eq!(data["username"], "root@pam");
        assert!(data["cap"].is_object(), "capabilities are reported");
        Session {
            base,
            http,
            auth: Auth::Ticket {
                ticket: data["ticket"].as_str().unwrap().to_owned(),
                csrf: data["CSRFPreventionToken"].as_str().unwrap().to_owned(),
            },
        }
    }

    pub fn with_token(server: &MockServerHandle, token: String) -> Session {
        Session {
            base: server.base_url(),
            http: http_client(),
            auth: Auth::Token(token),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.call_with_csrf(method, path, params, true).await
    }

    pub async fn call_with_csrf(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        send_csrf: bool,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        match &self.auth {
            Auth::Ticket { ticket, csrf } => {
                request = request.header("Cookie", format!("PVEAuthCookie={ticket}"));
                if send_csrf && method != Method::GET {
                    request = request.header("CSRFPreventionToken", csrf);
                }
            }
            Auth::Token(token) => {
                request = request.header("Authorization", format!("PVEAPIToken={token}"));
            }
        }
        request = if method == Method::GET || method == Method::DELETE {
            request.query(params)
        } else {
            request.form(params)
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A call that must answer 200; returns its `data`.
    pub async fn ok(&self, method: Method, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, reply) = self.call(method.clone(), path, params).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{method} {path} {params:?}: {reply}"
        );
        reply["data"].clone()
    }

    /// A write; when it answers with a UPID, waits for the task and checks it ended `OK`.
    pub async fn run(&self, method: Method, path: &str, params: &[(&str, &str)]) {
        let data = self.ok(method.clone(), path, params).await;
        if let Some(upid) = data.as_str().filter(|text| text.starts_with("UPID:")) {
            assert_eq!(self.wait(upid).await, "OK", "{method} {path}");
        }
    }

    /// Polls a task until it stops; returns its exit status.
    pub async fn wait(&self, upid: &str) -> String {
        let node = upid.split(':').nth(1).unwrap();
        let path = format!("/nodes/{node}/tasks/{}/status", encode(upid));
        for _ in 0..200 {
            let (status, reply) = self.call(Method::GET, &path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{reply}");
            if reply["data"]["status"] == "stopped" {
                return reply["data"]["exitstatus"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {upid} did not stop");
    }
}

pub fn encode(segment: &str) -> String {
    segment.replace(':', "%3A").replace('@', "%40")
}

pub fn upid_of(reply: &Value) -> String {
    let upid = reply["data"]
        .as_str()
        .unwrap_or_else(|| panic!("no UPID in {reply}"));
    assert!(
        upid.starts_with("UPID:pve1:") && upid.ends_with(':'),
        "{upid}"
    );
    upid.to_owned()
}
