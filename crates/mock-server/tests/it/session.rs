//! An authenticated test client: a ticket session (with its CSRF token) or an API token, over
//! reqwest, answering the status and the decoded reply.

use reqwest::Method;
use serde_json::Value;

use crate::client;

/// An authenticated client: a ticket (with CSRF token) or an API token.
pub struct Session {
    base: String,
    auth: Auth,
    http: reqwest::Client,
}

enum Auth {
    Ticket { ticket: String, csrf: String },
    Token(String),
}

pub async fn post_ticket(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = client()
        .post(format!("{base}/access/ticket"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Session {
    pub async fn login(base: &str, username: &str, password: &str) -> Session {
        let (status, reply) =
            post_ticket(base, &[("username", username), ("password", password)]).await;
        assert_eq!(status, 200, "{username}: {reply}");
        Session::with_ticket(base, &reply["data"])
    }

    pub fn with_ticket(base: &str, data: &Value) -> Session {
        Session {
            base: base.to_owned(),
            auth: Auth::Ticket {
                ticket: data["ticket"].as_str().unwrap().to_owned(),
                csrf: data["CSRFPreventionToken"].as_str().unwrap().to_owned(),
            },
            http: client(),
        }
    }

    /// The ticket of a ticket session.
    pub fn ticket(&self) -> Option<&str> {
        match &self.auth {
            Auth::Ticket { ticket, .. } => Some(ticket),
            Auth::Token(_) => None,
        }
    }

    pub fn token(base: &str, value: &str) -> Session {
        Session {
            base: base.to_owned(),
            auth: Auth::Token(value.to_owned()),
            http: client(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let mut builder = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        builder = match &self.auth {
            Auth::Ticket { ticket, csrf } => {
                let builder = builder.header("Cookie", format!("PVEAuthCookie={ticket}"));
                if method == Method::GET {
                    builder
                } else {
                    builder.header("CSRFPreventionToken", csrf)
                }
            }
            Auth::Token(value) => builder.header("Authorization", format!("PVEAPIToken={value}")),
        };
        builder = if method == Method::GET || method == Method::DELETE {
            builder.query(form)
        } else {
            builder.form(form)
        };
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, &[]).await
    }
}
