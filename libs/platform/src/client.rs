//! Channels from one Qualify service to another, built one way: connected
//! lazily (a service starts before its dependencies answer), without Nagle
//! delays, kept alive, and traced (each call a client span whose W3C context
//! travels in the request metadata).

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::telemetry::{ClientTrace, ClientTraceLayer};

/// A channel to another Qualify service.
pub type ServiceChannel = ClientTrace<Channel>;

/// A lazily connected, traced channel to `url`. `request_timeout` bounds each
/// unary call; leave it `None` for long-lived streams.
pub fn service_channel(url: &str, request_timeout: Option<Duration>) -> anyhow::Result<ServiceChannel> {
    let mut endpoint = Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(t) = request_timeout {
        endpoint = endpoint.timeout(t);
    }
    Ok(tower::Layer::layer(&ClientTraceLayer, endpoint.connect_lazy()))
}
