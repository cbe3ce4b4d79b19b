//! Telemetry, written once for every service:
//!
//! - structured logs as text or JSON (filtered by `RUST_LOG`); inside an RPC
//!   every line carries the RPC's `trace_id`;
//! - traces exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//!   not exported otherwise (trace ids still reach the logs), continuing the
//!   caller's W3C trace context from the request metadata and passing it on
//!   to the services we call ([`RpcLayer`], [`ClientTraceLayer`]);
//! - request metrics (`rpc_server_duration_seconds` per service, method and
//!   status code) and business figures through the `metrics` facade, served in
//!   the Prometheus text format by [`serve_prometheus`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Keeps the trace pipeline alive; dropping it flushes pending spans.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace export did not shut down cleanly: {e}");
        }
    }
}

/// Installs logging with trace ids, and trace export to `otlp_endpoint` when one is given,
/// as the process-wide subscriber. Later calls in the same process (tests)
/// keep the first subscriber. Call it inside the Tokio runtime: the OTLP
/// exporter's channel lives there.
pub fn init(format: LogFormat, service: &str, otlp_endpoint: Option<&str>) -> Telemetry {
    let exporter = otlp_endpoint.and_then(|endpoint| {
        use opentelemetry_otlp::WithExportConfig;
        match opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build() {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint:?} is unusable, traces stay off: {e}");
                None
            }
        }
    });
    // Without an exporter spans are still made, so that logs carry the trace id the caller
    // sent (or a fresh one) and calls onward pass it on.
    let mut provider = SdkTracerProvider::builder().with_resource(resource(service));
    if let Some(e) = exporter {
        provider = provider.with_batch_exporter(e);
    }
    install(format, Some(provider.build()))
}

/// Like [`init`], but spans go to `exporter` one by one as they end: for tests
/// that collect spans in memory.
pub fn init_with_exporter(format: LogFormat, service: &str, exporter: impl SpanExporter + 'static) -> Telemetry {
    let provider = SdkTracerProvider::builder().with_resource(resource(service)).with_simple_exporter(exporter).build();
    install(format, Some(provider))
}

fn resource(service: &str) -> opentelemetry_sdk::Resource {
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("qualify-{service}"));
    opentelemetry_sdk::Resource::builder().with_service_name(name).build()
}

static TRACING_ON: OnceLock<bool> = OnceLock::new();

fn install(format: LogFormat, provider: Option<SdkTracerProvider>) -> Telemetry {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed(),
        LogFormat::Text => fmt.compact().boxed(),
    };
    let otel = provider.as_ref().map(|p| {
        // Spans are exported whatever RUST_LOG says about log lines.
        tracing_opentelemetry::layer().with_tracer(p.tracer("qualify")).with_filter(EnvFilter::new("info"))
    });
    let subscriber = tracing_subscriber::registry().with(fmt.with_filter(filter())).with(otel);
    // Not `try_init`: it also claims the `log` crate's logger and reports failure when another
    // logger holds it, although the subscriber itself was installed.
    let installed = tracing::subscriber::set_global_default(subscriber).is_ok();
    if installed {
        let _ = TRACING_ON.set(provider.is_some());
        Telemetry { provider }
    } else {
        // Another subscriber won; this provider would never see a span.
        if let Some(p) = provider {
            let _ = p.shutdown();
        }
        Telemetry { provider: None }
    }
}

fn tracing_on() -> bool {
    TRACING_ON.get().copied().unwrap_or(false)
}

/// Serves the process's metrics in the Prometheus text format on `addr`
/// (`GET /metrics`), over TLS with `tls`'s certificate when given (no client
/// certificate asked: scrapers present none). The recorder is process-wide:
/// the first call installs it, later calls are ignored. Call inside the Tokio runtime.
pub fn serve_prometheus(addr: SocketAddr, tls: Option<&crate::tls::TlsFiles>) -> anyhow::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    const LATENCY: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    const DAYS: &[f64] = &[0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 14.0, 30.0, 60.0, 90.0];
    let acceptor =
        tls.map(|t| crate::tls::acceptor(&crate::tls::TlsFiles { client_ca: None, ..t.clone() })).transpose()?;
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY)?
        .set_buckets_for_metric(Matcher::Suffix("_days".into()), DAYS)?
        .install_recorder()?;
    let _ = INSTALLED.set(());
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    match acceptor {
        Some(acceptor) => {
            tokio::spawn(async move {
                use futures::StreamExt;
                let mut conns = crate::tls::incoming(listener, acceptor);
                while let Some(conn) = conns.next().await {
                    if let Ok(io) = conn {
                        tokio::spawn(answer_scrape(io, handle.clone()));
                    }
                }
            });
        }
        None => {
            tokio::spawn(async move {
                loop {
                    if let Ok((io, _)) = listener.accept().await {
                        tokio::spawn(answer_scrape(io, handle.clone()));
                    }
                }
            });
        }
    }
    tracing::info!(%addr, tls = tls.is_some(), "Prometheus metrics at /metrics");
    Ok(())
}

/// Answers one scrape: `GET /metrics` with the rendered metrics, anything else 404; one request a connection.
async fn answer_scrape<IO>(mut io: IO, handle: metrics_exporter_prometheus::PrometheusHandle)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(std::time::Duration::from_secs(10), io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 && head.len() < 16 * 1024 => head.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    let (status, body) = match (words.next(), words.next()) {
        (Some("GET"), Some(p)) if p == "/metrics" || p.starts_with("/metrics?") => ("200 OK", handle.render()),
        _ => ("404 Not Found", String::new()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = io.write_all(resp.as_bytes()).await;
    let _ = io.write_all(body.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// The `(service, method)` of a gRPC path `/pkg.Service/Method`.
pub fn rpc_name(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split_once('/').unwrap_or((path, ""))
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(k, v);
        }
    }
}

/// The gRPC status code of a response: from its headers when the call
/// failed before a body (trailers-only, as every unary error is), else OK.
fn grpc_code<B>(res: &Response<B>) -> i32 {
    res.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Server layer: one span per RPC, a child of the caller's W3C trace context
/// when the request carries one, and the request-duration histogram by
/// service, method and status code.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcLayer;

impl<S> tower::Layer<S> for RpcLayer {
    type Service = Rpc<S>;
    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner }
    }
}

/// The service of [`RpcLayer`].
#[derive(Clone, Debug)]
pub struct Rpc<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, RB> tower::Service<Request<B>> for Rpc<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (service, method) = rpc_name(req.uri().path());
        let (service, method) = (service.to_string(), method.to_string());
        let span = tracing::info_span!(
            "rpc",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        if tracing_on() {
            let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
            if let Err(e) = span.set_parent(parent) {
                tracing::debug!(error = %e, "trace context not applied");
            }
            let trace_id = span.context().span().span_context().trace_id();
            span.record("trace_id", tracing::field::display(trace_id));
        }
        let start = Instant::now();
        let fut = self.inner.call(req);
        let record = span.clone();
        Box::pin(
            async move {
                let res = fut.await;
                let code = res.as_ref().map(grpc_code).unwrap_or(2);
                record.record("rpc.grpc.status_code", code);
                let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
                // Codes that say the server, not the caller, is at fault.
                if matches!(code, 2 | 4 | 13 | 14 | 15) {
                    tracing::warn!(code, elapsed_ms, "rpc failed");
                } else {
                    tracing::debug!(code, elapsed_ms, "rpc done");
                }
                metrics::histogram!(
                    "rpc_server_duration_seconds",
                    "rpc_service" => service,
                    "rpc_method" => method,
                    "rpc_grpc_status_code" => code.to_string(),
                )
                .record(start.elapsed().as_secs_f64());
                res
            }
            .instrument(span),
        )
    }
}

/// Client layer for service-to-service channels: a client span per call and
/// the current trace context injected as W3C `traceparent` metadata, so one
/// trace follows a request across services.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTraceLayer;

impl<S> tower::Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;
    fn layer(&self, inner: S) -> ClientTrace<S> {
        ClientTrace { inner }
    }
}

/// The service of [`ClientTraceLayer`].
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<Request<B>> for ClientTrace<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let (service, method) = rpc_name(req.uri().path());
        let span = tracing::info_span!(
            "rpc.client",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        if tracing_on() {
            TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(req.headers_mut()));
        }
        let fut = self.inner.call(req);
        let record = span.clone();
        Box::pin(
            async move {
                let res = fut.await;
                if let Ok(r) = &res {
                    record.record("rpc.grpc.status_code", grpc_code(r));
                }
                res
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_split_service_and_method() {
        assert_eq!(
            rpc_name("/qualify.scoring.v1.LeadScoringService/ScoreLead"),
            ("qualify.scoring.v1.LeadScoringService", "ScoreLead")
        );
        assert_eq!(rpc_name("/odd"), ("odd", ""));
    }

    #[test]
    fn a_failed_call_reports_its_code_from_trailers_only_headers() {
        let ok = Response::new(());
        assert_eq!(grpc_code(&ok), 0);
        let failed = tonic::Status::invalid_argument("x").into_http::<()>();
        assert_eq!(grpc_code(&failed), 3);
    }
}
