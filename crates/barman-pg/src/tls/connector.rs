//! The tokio-postgres side: a `MakeTlsConnect` on tokio-rustls with the
//! shared [`ClientConfig`](super::ClientConfig), the shared
//! `tls-server-end-point` hash for SCRAM-SHA-256-PLUS, and a record of how
//! far the handshake got (libpq's `prefer` retries in plain text after a
//! failed TLS attempt).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::{SslMode, TlsError, config::server_name, describe_handshake_error, rustls_error};

/// How far the TLS handshake of the last attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeState {
    /// Not started (plain connection, or the server answered `N`).
    NotStarted,
    /// Started (the server answered `S`) and failed.
    Failed,
    /// Completed.
    Done,
}

impl HandshakeState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Failed,
            2 => Self::Done,
            _ => Self::NotStarted,
        }
    }
}

/// tokio-postgres' TLS connector on rustls. Cloned per connection attempt
/// (each clone shares the attempt's [`HandshakeState`]).
#[derive(Debug, Clone)]
pub struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
    sslmode: SslMode,
    state: Arc<AtomicU8>,
}

impl MakeRustlsConnect {
    /// A connector with `config`; `sslmode` decides whether a missing host
    /// name is an error (`verify-full`).
    pub fn new(config: Arc<ClientConfig>, sslmode: SslMode) -> Self {
        Self {
            config,
            sslmode,
            state: Arc::new(AtomicU8::new(0)),
        }
    }

    /// A connector for a new attempt (same configuration, fresh state).
    #[must_use]
    pub fn fresh(&self) -> Self {
        Self::new(self.config.clone(), self.sslmode)
    }

    /// How far the handshake of the attempt made with this connector got.
    pub fn state(&self) -> HandshakeState {
        HandshakeState::from_u8(self.state.load(Ordering::SeqCst))
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // tokio-postgres asks for every host, TLS or not: a name error only
        // matters once the server has agreed to TLS.
        Ok(RustlsConnect {
            config: self.config.clone(),
            name: server_name(domain, self.sslmode),
            state: self.state.clone(),
        })
    }
}

/// One host's TLS connector (see [`MakeRustlsConnect`]).
#[derive(Debug)]
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: Result<ServerName<'static>, TlsError>,
    state: Arc<AtomicU8>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let state = self.state;
            state.store(1, Ordering::SeqCst);
            let name = self.name.map_err(io::Error::other)?;
            let connector = tokio_rustls::TlsConnector::from(self.config);
            match connector.connect(name, stream).await {
                Ok(stream) => {
                    state.store(2, Ordering::SeqCst);
                    Ok(RustlsStream(stream))
                }
                Err(e) => Err(match rustls_error(&e) {
                    Some(inner) => io::Error::new(e.kind(), describe_handshake_error(inner)),
                    None => e,
                }),
            }
        })
    }
}

/// A TLS stream for tokio-postgres.
#[derive(Debug)]
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| super::server_end_point_hash(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
