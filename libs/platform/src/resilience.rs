//! How a service protects itself and its callers, written once:
//!
//! - [`DeadlineLayer`]: every request ends by the client's `grpc-timeout`
//!   or the server's own ceiling, whichever is sooner, with DEADLINE_EXCEEDED;
//! - [`ShedLayer`]: a bound on requests in flight; beyond it a request is
//!   refused at once with RESOURCE_EXHAUSTED and a retry hint instead of
//!   queueing without bound (health and reflection are never shed, so probes
//!   keep answering under load);
//! - [`TenantLimiter`]: per-tenant request rates, checked once the caller is
//!   known (in the authenticator);
//! - [`retry_idempotent`]: retries with jittered exponential backoff for
//!   service-to-service calls that are safe to repeat.
//!
//! On a deadline the handler's future is dropped: handlers keep every change
//! inside one database transaction, so nothing is left half-done.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{HeaderMap, Request, Response};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::{Code, Status};

use crate::ApiError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The ErrorInfo domain of refusals made before a request reaches its service.
const DOMAIN: &str = "server.qualify";

/// The client's deadline from a `grpc-timeout` header (`<1–8 digits><H|M|S|m|u|n>`).
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Ends each request at `min(grpc-timeout, ceiling)` with DEADLINE_EXCEEDED.
/// The deadline covers producing the response; a server stream, once
/// started, is the client's to cancel.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    ceiling: Duration,
}

impl DeadlineLayer {
    /// Requests run at most `ceiling`, less when the client asks.
    pub fn new(ceiling: Duration) -> Self {
        DeadlineLayer { ceiling }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner, ceiling: self.ceiling }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    ceiling: Duration,
}

impl<S, B> tower::Service<Request<B>> for Deadline<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let budget = grpc_timeout(req.headers()).map_or(self.ceiling, |t| t.min(self.ceiling));
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(budget, fut).await {
                Ok(res) => res,
                Err(_) => {
                    metrics::counter!("rpc_server_deadline_exceeded_total").increment(1);
                    Ok(Status::deadline_exceeded(format!("deadline of {budget:?} exceeded")).into_http())
                }
            }
        })
    }
}

/// Admits at most `limit` requests at once across all connections; the rest
/// are refused immediately with RESOURCE_EXHAUSTED (ErrorInfo
/// `SERVER_OVERLOADED`, RetryInfo). Health checks and reflection pass.
#[derive(Clone, Debug)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    /// A bound of `limit` requests in flight.
    pub fn new(limit: usize) -> Self {
        ShedLayer { permits: Arc::new(Semaphore::new(limit.max(1))) }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Shed<S> {
        Shed { inner, permits: self.permits.clone() }
    }
}

/// The service of [`ShedLayer`].
#[derive(Clone, Debug)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

/// How long a shed client should wait before trying again.
const SHED_RETRY_AFTER: Duration = Duration::from_millis(100);

/// Longest a refusal waits for the rest of the request it refuses.
const DRAIN_AT_MOST: Duration = Duration::from_millis(200);

fn never_shed(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

impl<S, B> tower::Service<Request<B>> for Shed<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: http_body_util::BodyExt + Send + 'static,
    B::Data: Send,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let permit = if never_shed(req.uri().path()) {
            None
        } else {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    metrics::counter!("rpc_server_shed_total").increment(1);
                    let status = ApiError::ResourceExhausted {
                        reason: "SERVER_OVERLOADED",
                        message: "the server is at its concurrency limit; retry with backoff".into(),
                        retry_after: SHED_RETRY_AFTER,
                    }
                    .into_status(DOMAIN);
                    let body = req.into_body();
                    return Box::pin(async move {
                        // Take in what the caller is still sending (a unary message is small): a
                        // refusal sent before the request ended reaches some clients as a reset
                        // stream ("transport error") instead of this status.
                        let _ = tokio::time::timeout(DRAIN_AT_MOST, http_body_util::BodyExt::collect(body)).await;
                        Ok(status.into_http())
                    });
                }
            }
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(permit);
            res
        })
    }
}

/// Per-tenant request rates (GCRA): `per_second` sustained, bursts of twice
/// that. Checked after authentication, so only a verified tenant spends its
/// own budget.
#[derive(Clone)]
pub struct TenantLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl TenantLimiter {
    /// `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)));
        // Forget tenants idle long enough to be back at a full burst.
        let weak = Arc::downgrade(&limiter);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(l) = weak.upgrade() else { return };
                    l.retain_recent();
                }
            });
        }
        Some(TenantLimiter { limiter })
    }

    /// Spends one request of `tenant`'s budget, or says when to retry.
    pub fn check(&self, tenant: &str) -> Result<(), ApiError> {
        self.limiter.check_key(&tenant.to_string()).map_err(|not_until| {
            metrics::counter!("qualify_tenant_rate_limited_total").increment(1);
            ApiError::ResourceExhausted {
                reason: "TENANT_RATE_LIMITED",
                message: format!("tenant {tenant:?} is over its request rate; retry later"),
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }
        })
    }
}

/// Codes after which repeating an idempotent call can succeed.
fn retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::ResourceExhausted)
}

/// Runs `call` up to three times while it fails with UNAVAILABLE or
/// RESOURCE_EXHAUSTED, sleeping a jittered 25 ms, then 50 ms, between tries.
/// Only for calls that are safe to repeat (reads, or writes carrying a
/// `request_id`).
pub async fn retry_idempotent<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(s) if attempt < ATTEMPTS && retryable(s.code()) => {
                let base = Duration::from_millis(25) * 2u32.pow(attempt - 1);
                // Full jitter keeps a crowd of retrying clients from moving in step.
                let pause = base.mul_f64(rand::random::<f64>());
                tracing::debug!(code = ?s.code(), attempt, ?pause, "retrying an idempotent call");
                metrics::counter!("rpc_client_retries_total").increment(1);
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::sync::Notify;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    fn request(path: &str, timeout: Option<&str>) -> Request<String> {
        let mut r = Request::builder().uri(path);
        if let Some(t) = timeout {
            r = r.header("grpc-timeout", t);
        }
        r.body(String::new()).unwrap_or_default()
    }

    fn code(res: &Response<Body>) -> Option<&str> {
        res.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_refuse_garbage() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("grpc-timeout", v.parse().unwrap_or(http::HeaderValue::from_static("x")));
            grpc_timeout(&m)
        };
        assert_eq!(h("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(h("3M"), Some(Duration::from_secs(180)));
        assert_eq!(h("5S"), Some(Duration::from_secs(5)));
        assert_eq!(h("250m"), Some(Duration::from_millis(250)));
        assert_eq!(h("7u"), Some(Duration::from_micros(7)));
        assert_eq!(h("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "12", "1x", "123456789S", "-1S"] {
            assert_eq!(h(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_request_ends_at_the_clients_deadline_with_deadline_exceeded() {
        let slow = tower::service_fn(|_: Request<String>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, std::convert::Infallible>(Response::new(Body::default()))
        });
        let mut svc = DeadlineLayer::new(Duration::from_secs(30)).layer(slow);
        let started = tokio::time::Instant::now();
        let res = svc.ready().await.unwrap().call(request("/a.B/C", Some("50m"))).await.unwrap();
        assert_eq!(code(&res), Some("4"), "DEADLINE_EXCEEDED");
        assert_eq!(started.elapsed(), Duration::from_millis(50), "the client's deadline, not the ceiling");
        let started = tokio::time::Instant::now();
        let res = svc.ready().await.unwrap().call(request("/a.B/C", Some("2H"))).await.unwrap();
        assert_eq!(code(&res), Some("4"));
        assert_eq!(started.elapsed(), Duration::from_secs(30), "never past the server's ceiling");
    }

    #[tokio::test]
    async fn beyond_the_limit_requests_are_refused_at_once_and_admitted_again_after() {
        let gate = Arc::new(Notify::new());
        let entered = Arc::new(AtomicU32::new(0));
        let (g, e) = (gate.clone(), entered.clone());
        let blocked = tower::service_fn(move |_: Request<String>| {
            let (g, e) = (g.clone(), e.clone());
            async move {
                e.fetch_add(1, Ordering::SeqCst);
                g.notified().await;
                Ok::<_, std::convert::Infallible>(Response::new(Body::default()))
            }
        });
        let svc = ShedLayer::new(2).layer(blocked);
        let call = |path: &'static str| {
            let mut s = svc.clone();
            async move { s.ready().await.unwrap().call(request(path, None)).await.unwrap() }
        };
        let held: Vec<_> = (0..2).map(|_| tokio::spawn(call("/a.B/C"))).collect();
        while entered.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // Both permits are held and will be until the gate opens: the third
        // request cannot wait for one, so it must have been refused.
        let refused = call("/a.B/C").await;
        assert_eq!(code(&refused), Some("8"), "RESOURCE_EXHAUSTED");
        let status = Status::from_header_map(refused.headers()).unwrap();
        assert!(tonic_types::StatusExt::get_error_details(&status).retry_info().is_some());
        // Probes are never shed.
        let probe = tokio::spawn(call("/grpc.health.v1.Health/Check"));
        while entered.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        gate.notify_waiters();
        for h in held {
            assert_eq!(code(&h.await.unwrap()), None);
        }
        assert_eq!(code(&probe.await.unwrap()), None);
        // Capacity is back as soon as the load is gone.
        let again = tokio::spawn(call("/a.B/C"));
        while entered.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        gate.notify_waiters();
        assert_eq!(code(&again.await.unwrap()), None);
    }

    #[tokio::test]
    async fn each_tenant_has_its_own_budget() {
        let l = TenantLimiter::new(5).unwrap();
        let passed = (0..50).filter(|_| l.check("acme").is_ok()).count();
        assert_eq!(passed, 10, "a burst of twice the rate, then refusals");
        let err = l.check("acme").unwrap_err().into_status("x");
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(tonic_types::StatusExt::get_error_details(&err).retry_info().is_some());
        assert!(l.check("globex").is_ok(), "another tenant is not affected");
        assert!(TenantLimiter::new(0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn idempotent_calls_are_retried_on_unavailable_only_and_at_most_three_times() {
        let tries = AtomicU32::new(0);
        let r: Result<(), Status> = retry_idempotent(|| {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err(Status::unavailable("down")) }
        })
        .await;
        assert_eq!((r.unwrap_err().code(), tries.load(Ordering::SeqCst)), (Code::Unavailable, 3));

        tries.store(0, Ordering::SeqCst);
        let r = retry_idempotent(|| {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            async move { if n == 0 { Err(Status::unavailable("blip")) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.unwrap(), 1, "the second try answered");

        tries.store(0, Ordering::SeqCst);
        let r: Result<(), Status> = retry_idempotent(|| {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err(Status::not_found("gone")) }
        })
        .await;
        assert_eq!((r.unwrap_err().code(), tries.load(Ordering::SeqCst)), (Code::NotFound, 1));
    }
}
