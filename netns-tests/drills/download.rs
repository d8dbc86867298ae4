//! The drill client's downloads through the VIP: one GET, repeated once on a new connection
//! when the keep-alive connection it was sent on had already served a request and was closed
//! or reset before any response byte (RFC 9112 §9.3.1 lets a client repeat an idempotent
//! request then; browsers, curl and Go's net/http do). A VIP handover can close a kept-alive
//! connection while a request is on its way: the old Master closes its idle connections when
//! it stops serving the VIP, and a request sent before that close reached the client meets a
//! closed socket. The repeat is counted (`Req::Retried`), so a client that never repeats can
//! read off how often it would have seen an error.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::{capture_connection, CaptureConnection, HttpInfo};
use hyper_util::client::legacy::Client;
use std::collections::HashSet;
use std::net::SocketAddr;

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

pub struct Downloader {
    http: Http,
    /// Local ends of connections that have served a response: a request failing on one of
    /// them went out on a reused connection.
    served_on: HashSet<SocketAddr>,
}

/// How one GET ended.
pub enum Got {
    /// The body, and whether it took a repeat on a new connection.
    Body {
        body: Bytes,
        repeated: Option<String>,
    },
    Failed(String),
}

/// A GET that failed; `repeatable` when it went out on a reused connection and no response
/// header came back.
struct Failure {
    why: String,
    repeatable: bool,
}

impl Downloader {
    pub fn new() -> Downloader {
        let http = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build_http::<Empty<Bytes>>();
        Downloader {
            http,
            served_on: HashSet::new(),
        }
    }

    pub async fn get(&mut self, uri: &hyper::Uri) -> Got {
        match self.get_once(uri).await {
            Ok(body) => Got::Body {
                body,
                repeated: None,
            },
            Err(f) if f.repeatable => match self.get_once(uri).await {
                Ok(body) => Got::Body {
                    body,
                    repeated: Some(f.why),
                },
                Err(again) => Got::Failed(format!("{} (repeated after: {})", again.why, f.why)),
            },
            Err(f) => Got::Failed(f.why),
        }
    }

    async fn get_once(&mut self, uri: &hyper::Uri) -> Result<Bytes, Failure> {
        let mut req = hyper::Request::get(uri.clone())
            .body(Empty::new())
            .expect("GET request");
        let conn = capture_connection(&mut req);
        let resp = match self.http.request(req).await {
            Ok(resp) => resp,
            Err(e) => {
                let reused = !e.is_connect()
                    && local_end(&conn).is_some_and(|l| self.served_on.contains(&l));
                return Err(Failure {
                    why: format!("{e:?}"),
                    repeatable: reused,
                });
            }
        };
        if let Some(info) = resp.extensions().get::<HttpInfo>() {
            self.served_on.insert(info.local_addr());
        }
        let status = resp.status();
        // A response header came back: whatever happens now is not repeated.
        let body = resp.into_body().collect().await.map_err(|e| Failure {
            why: format!("body: {e}"),
            repeatable: false,
        })?;
        if !status.is_success() {
            return Err(Failure {
                why: format!("status {status}"),
                repeatable: false,
            });
        }
        Ok(body.to_bytes())
    }
}

/// The local address of the connection a request was sent on, if it got one.
fn local_end(conn: &CaptureConnection) -> Option<SocketAddr> {
    let meta = conn.connection_metadata();
    let connected = meta.as_ref()?;
    let mut ext = hyper::http::Extensions::new();
    connected.get_extras(&mut ext);
    ext.get::<HttpInfo>().map(|i| i.local_addr())
}
