//! Serving a Qualify service: the business routes plus gRPC health and
//! reflection (v1 and v1alpha), gRPC-Web over HTTP/1.1 and HTTP/2 beside
//! gRPC, readiness that follows the database, and a graceful drain on
//! shutdown.

use std::future::Future;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::resilience::{DeadlineLayer, ShedLayer};
use crate::telemetry::RpcLayer;

/// What [`serve`] needs besides the routes.
pub struct ServeOptions {
    /// Fully-qualified gRPC name of the business service: its readiness entry
    /// in grpc.health.v1 and its name in reflection.
    pub service_name: &'static str,
    /// The service's database; readiness is SERVING only while it answers.
    pub db: DatabaseConnection,
    /// How long to report NOT_SERVING before refusing new connections.
    pub drain_grace: Duration,
    /// How often readiness pings the database.
    pub readiness_interval: Duration,
    /// Ceiling on any request's duration; a shorter `grpc-timeout` wins.
    pub request_timeout: Duration,
    /// Requests in flight before new ones are shed.
    pub max_concurrent_requests: usize,
    /// Origins allowed to call from a browser (gRPC-Web); `*` for any; empty: no CORS.
    pub cors_origins: Vec<String>,
    /// The authenticator, whose issuers' key fetches are reported as [`IDENTITY_HEALTH`].
    pub identity: Option<crate::Authenticator>,
    /// TLS on the port (and client certificates, when the files name a client CA).
    pub tls: Option<crate::tls::TlsFiles>,
    /// A plaintext listener serving the same health answers and nothing else, for probes
    /// that speak no TLS.
    pub health_listener: Option<TcpListener>,
}

/// The health entry that is SERVING while every trusted issuer's last key fetch
/// succeeded; NOT_SERVING says the keys in use may be stale (the service still
/// serves with them). `qualify.identity/<issuer>` says it of one issuer. Absent
/// without issuers.
pub const IDENTITY_HEALTH: &str = "qualify.identity";

/// Serves `routes` on `listener` until `shutdown` resolves, then drains:
/// readiness turns NOT_SERVING, the grace period lets load balancers notice,
/// and in-flight requests finish before the server returns.
///
/// Liveness (the empty service name) stays SERVING as long as the process
/// serves; it never depends on the database.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(opts.service_name, ServingStatus::NotServing).await;
    // Reflection lists what this server hosts, not every Qualify service.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(qualify_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(opts.service_name)
            .with_service_name("grpc.health.v1.Health")
    };
    // The probe port answers health only, from the same reporter: no token, no business data.
    let probes = opts.health_listener.map(|l| {
        let health = health.clone();
        tokio::spawn(async move {
            let incoming = TcpIncoming::from(l).with_nodelay(Some(true));
            if let Err(e) = Server::builder().add_service(health).serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "the health port stopped");
            }
        })
    });
    let routes =
        routes.add_service(health).add_service(reflection().build_v1()?).add_service(reflection().build_v1alpha()?);

    let (stop_tx, stop_rx) = watch::channel(false);
    let readiness = tokio::spawn(readiness_loop(
        reporter.clone(),
        opts.service_name,
        opts.db,
        opts.identity,
        opts.readiness_interval,
        stop_rx,
    ));
    let name = opts.service_name;
    let grace = opts.drain_grace;
    let drain = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        reporter.set_service_status(name, ServingStatus::NotServing).await;
        tracing::info!(service = name, grace_secs = grace.as_secs(), "draining");
        tokio::time::sleep(grace).await;
    };

    let addr = listener.local_addr()?;
    // Unusable certificate files stop the start here, before anything is served.
    let acceptor = opts.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let client_certs = opts.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    tracing::info!(service = name, %addr, tls = acceptor.is_some(), client_certs, "serving");
    // Outermost first: every request, shed or timed out included, is traced
    // and counted; shedding happens before any work; the deadline bounds the rest.
    let layers = tower::ServiceBuilder::new()
        // Browsers on the allowed origins: preflights answered, gRPC headers exposed.
        .option_layer(cors(&opts.cors_origins))
        // gRPC-Web (browsers, plain HTTP/1.1 tools) is translated to gRPC first, so everything
        // below sees one protocol.
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(RpcLayer)
        .layer(ShedLayer::new(opts.max_concurrent_requests))
        .layer(DeadlineLayer::new(opts.request_timeout))
        .into_inner();
    let router = Server::builder()
        .accept_http1(true)
        .layer(layers)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Long-lived HTTP/2 connections would pin clients to old pods after a scale-up.
        .max_connection_age(Duration::from_secs(300))
        .max_connection_age_grace(Duration::from_secs(30))
        .add_routes(routes);
    match acceptor {
        Some(acceptor) => router.serve_with_incoming_shutdown(crate::tls::incoming(listener, acceptor), drain).await?,
        // With our own listener, tonic's tcp_nodelay does not apply: set it on
        // the incoming sockets, or small responses wait out delayed ACKs (40 ms).
        None => {
            router.serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), drain).await?
        }
    }
    readiness.abort();
    if let Some(p) = probes {
        p.abort();
    }
    tracing::info!(service = name, "stopped");
    Ok(())
}

/// CORS for gRPC-Web callers on `origins` (`*` for any), or none.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let names = |v: &[&'static str]| v.iter().map(|n| HeaderName::from_static(n)).collect::<Vec<_>>();
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(names(&[
                "authorization",
                "content-type",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
                "traceparent",
                "tracestate",
            ]))
            .expose_headers(names(&["grpc-status", "grpc-message", "grpc-status-details-bin"]))
            .max_age(Duration::from_secs(24 * 3600)),
    )
}

async fn readiness_loop(
    reporter: HealthReporter,
    name: &'static str,
    db: DatabaseConnection,
    identity: Option<crate::Authenticator>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let ok = tokio::time::timeout(Duration::from_secs(2), db.ping()).await.is_ok_and(|r| r.is_ok());
        if *stop.borrow() {
            return;
        }
        let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
        if last != Some(ok) {
            if ok {
                tracing::info!(service = name, "database answers: ready");
            } else {
                tracing::warn!(service = name, "database does not answer: not ready");
            }
            last = Some(ok);
        }
        reporter.set_service_status(name, status).await;
        if let Some(auth) = &identity {
            let status = |ok| if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
            for (issuer, fetch) in auth.key_status() {
                reporter.set_service_status(format!("{IDENTITY_HEALTH}/{issuer}"), status(fetch.ok)).await;
            }
            if let Some(fresh) = auth.keys_fresh() {
                reporter.set_service_status(IDENTITY_HEALTH, status(fresh)).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

/// Whether the server has begun draining: long-lived streams end then, with
/// UNAVAILABLE, so their followers resume from another replica (or this one
/// restarted) instead of holding the drain open until the pod is killed.
#[derive(Clone, Debug)]
pub struct Draining(watch::Receiver<bool>);

impl Draining {
    /// A signal that [`Draining::start`]s when `shutdown` completes, and that shutdown wrapped to set it.
    pub fn on(
        shutdown: futures::future::BoxFuture<'static, ()>,
    ) -> (Draining, futures::future::BoxFuture<'static, ()>) {
        let (tx, rx) = watch::channel(false);
        let wrapped = Box::pin(async move {
            shutdown.await;
            tx.send_replace(true);
        });
        (Draining(rx), wrapped)
    }

    /// Completes once the server drains; never, for a signal no server sets.
    pub async fn started(&mut self) {
        if self.0.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Default for Draining {
    /// A signal that never fires (for use cases run without a server).
    fn default() -> Self {
        Draining(watch::channel(false).1)
    }
}
