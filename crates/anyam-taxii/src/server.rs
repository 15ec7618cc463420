//! Serving the router: HTTPS with rustls (TAXII 2.1 §1.6.7 requires TLS), or
//! plain HTTP when explicitly enabled, with graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;

/// Errors of starting or running the listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS certificate or key in {path}: {message}")]
    Tls { path: String, message: String },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Where and how to listen.
pub enum Transport<'a> {
    Plain,
    Tls { cert: &'a Path, key: &'a Path },
}

/// Write a self-signed certificate and key (PEM) for the given names, for a
/// node started without a configured certificate. The key file is made
/// readable by its owner only.
pub fn generate_self_signed(cert: &Path, key: &Path, names: Vec<String>) -> Result<(), ServeError> {
    let tls_err = |message: String| ServeError::Tls {
        path: cert.display().to_string(),
        message,
    };
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| tls_err(e.to_string()))?;
    std::fs::write(cert, ck.cert.pem())?;
    write_private(key, ck.key_pair.serialize_pem().as_bytes())?;
    Ok(())
}

/// Write a file that only its owner may read.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Serve `app` until `shutdown` resolves, then stop accepting, let requests
/// in flight finish (up to 30 seconds) and return. `bound` receives the
/// actual address once listening (useful with port 0).
pub async fn serve(
    app: Router,
    addr: SocketAddr,
    transport: Transport<'_>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    match transport {
        Transport::Plain => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            bound(listener.local_addr()?);
            axum::serve(listener, make)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Transport::Tls { cert, key } => {
            // One process-wide crypto provider; a second install is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| ServeError::Tls {
                    path: cert.display().to_string(),
                    message: e.to_string(),
                })?;
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|source| ServeError::Bind { addr, source })?;
            listener.set_nonblocking(true)?;
            bound(listener.local_addr()?);
            let handle = axum_server::Handle::new();
            let h2 = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h2.graceful_shutdown(Some(Duration::from_secs(30)));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(make)
                .await?;
        }
    }
    Ok(())
}
