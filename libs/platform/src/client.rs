//! Channels from one Qualify service to another, built one way: connected
//! lazily (a service starts before its dependencies answer), without Nagle
//! delays, kept alive, and traced (each call a client span whose W3C context
//! travels in the request metadata). An `https://` peer is reached over TLS
//! ([`crate::tls::ClientTls`]): its certificate verified, ours presented when
//! it asks.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::telemetry::{ClientTrace, ClientTraceLayer};
use crate::tls::ClientTls;

/// A channel to another Qualify service.
pub type ServiceChannel = ClientTrace<Channel>;

/// A lazily connected, traced channel to `url`. `request_timeout` bounds each
/// unary call; leave it `None` for long-lived streams.
pub fn service_channel(
    url: &str,
    request_timeout: Option<Duration>,
    tls: &ClientTls,
) -> anyhow::Result<ServiceChannel> {
    Ok(tower::Layer::layer(&ClientTraceLayer, channel(url, request_timeout, tls)?))
}

/// [`service_channel`] without the tracing layer.
pub fn channel(url: &str, request_timeout: Option<Duration>, tls: &ClientTls) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(t) = request_timeout {
        endpoint = endpoint.timeout(t);
    }
    Ok(match endpoint.uri().scheme_str() {
        Some("https") => endpoint.connect_with_connector_lazy(tls_connector(tls)?),
        _ => endpoint.connect_lazy(),
    })
}

/// Connects over TCP and TLS to the URI's host, verifying its certificate for that name.
fn tls_connector(
    tls: &ClientTls,
) -> anyhow::Result<
    impl tower::Service<
        http::Uri,
        Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        Error = std::io::Error,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
> {
    let connector = tokio_rustls::TlsConnector::from(tls.config()?);
    Ok(tower::service_fn(move |uri: http::Uri| {
        let connector = connector.clone();
        async move {
            let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{uri}: {m}"));
            let host = uri.host().ok_or_else(|| bad("no host"))?.trim_start_matches('[').trim_end_matches(']');
            let name =
                rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|_| bad("not a server name"))?;
            let tcp = tokio::net::TcpStream::connect((host, uri.port_u16().unwrap_or(443))).await?;
            tcp.set_nodelay(true)?;
            Ok(hyper_util::rt::TokioIo::new(connector.connect(name, tcp).await?))
        }
    }))
}
