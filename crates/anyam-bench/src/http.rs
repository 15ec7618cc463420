//! The HTTP/1.1 client side: where the server is, how we authenticate, and
//! one keep-alive connection per load task.
//!
//! Each task owns a `hyper::client::conn::http1` connection rather than
//! sharing a pooled client: a closed loop needs no pool, and the lighter the
//! client, the more of the two cores are left for the server under test.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// TAXII 2.1 media type (TAXII 2.1 §1.6.8).
pub const TAXII: &str = "application/taxii+json;version=2.1";

/// Server, collection and credentials, shared by `get` and `post`.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// The API root URL, e.g. `http://127.0.0.1:8080/anyam/` (loopback only).
    #[arg(long)]
    pub base: String,
    /// Collection id.
    #[arg(long)]
    pub collection: String,
    /// User for HTTP Basic auth.
    #[arg(long, requires = "password", conflicts_with = "token")]
    pub user: Option<String>,
    /// Password for HTTP Basic auth.
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// API token, sent as `Authorization: Bearer <token>`.
    #[arg(long)]
    pub token: Option<String>,
}

/// A resolved target: where to connect and what to put in every request.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as given in the base URL.
    pub authority: String,
    host: HeaderValue,
    /// Path of the API root, with a trailing slash.
    pub root_path: String,
    pub collection: String,
    auth: HeaderValue,
    /// `"basic"` or `"bearer"`, for the report.
    pub scheme: &'static str,
}

impl Target {
    pub fn from_args(a: &TargetArgs) -> Result<Target> {
        let rest = a.base.strip_prefix("http://").ok_or_else(|| {
            anyhow!("--base must be an http:// URL (the harness speaks plain HTTP to loopback)")
        })?;
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        let addr = authority
            .to_socket_addrs()
            .with_context(|| format!("resolving `{authority}`"))?
            .next()
            .ok_or_else(|| anyhow!("`{authority}` resolves to no address"))?;
        if !is_loopback(addr.ip()) {
            bail!("refusing to load {addr}: the harness only targets loopback addresses");
        }
        let mut root_path = format!("/{}", path.trim_matches('/'));
        if !root_path.ends_with('/') {
            root_path.push('/');
        }
        let (auth, scheme) = match (&a.user, &a.password, &a.token) {
            (Some(u), Some(p), None) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                (format!("Basic {b64}"), "basic")
            }
            (None, None, Some(t)) => (format!("Bearer {t}"), "bearer"),
            _ => bail!("give either --user and --password, or --token"),
        };
        Ok(Target {
            addr,
            authority: authority.to_owned(),
            host: HeaderValue::from_str(authority).context("host")?,
            root_path,
            collection: a.collection.clone(),
            auth: HeaderValue::from_str(&auth)
                .context("credentials are not a valid header value")?,
            scheme,
        })
    }

    /// Path of the collection's objects endpoint.
    pub fn objects_path(&self) -> String {
        format!("{}collections/{}/objects/", self.root_path, self.collection)
    }

    /// Path of the collection's manifest endpoint.
    pub fn manifest_path(&self) -> String {
        format!(
            "{}collections/{}/manifest/",
            self.root_path, self.collection
        )
    }

    /// The `Authorization` header every request carries.
    pub fn auth(&self) -> &HeaderValue {
        &self.auth
    }

    /// A GET for `path_and_query`.
    pub fn get(&self, path_and_query: &str) -> Result<Request<Full<Bytes>>> {
        Request::builder()
            .method(Method::GET)
            .uri(path_and_query)
            .header(HOST, self.host.clone())
            .header(ACCEPT, TAXII)
            .header(AUTHORIZATION, self.auth.clone())
            .body(Full::new(Bytes::new()))
            .context("building a request")
    }

    /// A POST of a TAXII envelope to the objects endpoint.
    pub fn post(&self, body: Bytes) -> Result<Request<Full<Bytes>>> {
        Request::builder()
            .method(Method::POST)
            .uri(self.objects_path())
            .header(HOST, self.host.clone())
            .header(ACCEPT, TAXII)
            .header(CONTENT_TYPE, TAXII)
            .header(AUTHORIZATION, self.auth.clone())
            .body(Full::new(body))
            .context("building a request")
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

/// A response read to the end.
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or the sender
            // is dropped; either way the task's next request notices.
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// Whether the server closed the connection (then open a new one).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole response, within `timeout`.
    pub async fn send(&mut self, req: Request<Full<Bytes>>, timeout: Duration) -> Result<Reply> {
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<Reply, anyhow::Error>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| anyhow!("no response within {timeout:?}"))?
    }
}

/// Opens a connection, retrying for a little while (a server that has just
/// started may not accept yet).
pub async fn open_retrying(addr: SocketAddr) -> Result<Conn> {
    let mut last = None;
    for _ in 0..50 {
        match Conn::open(addr).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| anyhow!("cannot connect to {addr}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(base: &str) -> TargetArgs {
        TargetArgs {
            base: base.into(),
            collection: "c".into(),
            user: Some("admin".into()),
            password: Some("pw".into()),
            token: None,
        }
    }

    #[test]
    fn base_url_is_parsed_and_loopback_enforced() {
        let t = Target::from_args(&args("http://127.0.0.1:9/anyam")).map_err(|e| e.to_string());
        let t = t
            .as_ref()
            .map(|t| (t.root_path.clone(), t.objects_path(), t.scheme));
        assert_eq!(
            t,
            Ok((
                "/anyam/".into(),
                "/anyam/collections/c/objects/".into(),
                "basic"
            ))
        );
        assert!(Target::from_args(&args("http://192.0.2.1:9/anyam/")).is_err());
        assert!(Target::from_args(&args("https://127.0.0.1:9/anyam/")).is_err());
    }
}
