//! Connections to the three services, bearer tokens on requests, and gRPC
//! errors printed with their `google.rpc` details.

use std::fmt::Write as _;
use std::time::Duration;

use qualify_proto::acceptance::opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient;
use qualify_proto::metrics::metrics_service_client::MetricsServiceClient;
use qualify_proto::scoring::lead_scoring_service_client::LeadScoringServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

/// Where the services listen.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub scoring: String,
    pub acceptance: String,
    pub metrics: String,
    /// What `https://` endpoints are verified against, and the client certificate shown.
    pub tls: qualify_platform::tls::ClientTls,
}

/// Lazily connected clients of the three services (a channel is only opened
/// when a call needs it, so a command talking to one service never needs the others).
#[derive(Clone)]
pub struct Clients {
    pub scoring: LeadScoringServiceClient<Channel>,
    pub acceptance: OpportunityAcceptanceServiceClient<Channel>,
    pub metrics: MetricsServiceClient<Channel>,
}

fn channel(what: &str, url: &str, tls: &qualify_platform::tls::ClientTls) -> anyhow::Result<Channel> {
    if url.starts_with("https://") {
        return qualify_platform::client::channel(url, Some(Duration::from_secs(60)), tls)
            .map_err(|e| anyhow::anyhow!("--{what} {url:?}: {e:#}"));
    }
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("--{what} {url:?} is not a valid URL: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

impl Clients {
    pub fn new(e: &Endpoints) -> anyhow::Result<Self> {
        Ok(Clients {
            scoring: LeadScoringServiceClient::new(channel("scoring", &e.scoring, &e.tls)?),
            acceptance: OpportunityAcceptanceServiceClient::new(channel("acceptance", &e.acceptance, &e.tls)?),
            metrics: MetricsServiceClient::new(channel("metrics", &e.metrics, &e.tls)?),
        })
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn req<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| anyhow::anyhow!("the token contains characters a header cannot carry"))?;
    r.metadata_mut().insert("authorization", value);
    Ok(r)
}

/// The canonical name of a status code (`INVALID_ARGUMENT`, ...).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A status as an operator reads it: the code, the message, then every
/// `google.rpc` detail (field violations, preconditions, reason, retry advice).
pub fn describe_status(s: &tonic::Status) -> String {
    let mut out = format!("{}: {}", code_name(s.code()), s.message());
    let details = s.get_error_details();
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            let _ = write!(out, "\n  field {}: {}", v.field, v.description);
        }
    }
    if let Some(pf) = details.precondition_failure() {
        for v in &pf.violations {
            let _ = write!(out, "\n  precondition {} {}: {}", v.r#type, v.subject, v.description);
        }
    }
    if let Some(info) = details.error_info() {
        let _ = write!(out, "\n  reason {} ({})", info.reason, info.domain);
        let mut meta: Vec<_> = info.metadata.iter().collect();
        meta.sort();
        for (k, v) in meta {
            let _ = write!(out, " {k}={v}");
        }
    }
    if let Some(retry) = details.retry_info()
        && let Some(d) = retry.retry_delay
    {
        let _ = write!(out, "\n  retry after {:.1}s", d.as_secs_f64());
    }
    if s.code() == tonic::Code::Unavailable && s.message().contains("connect") {
        out.push_str("\n  is the cluster running? (cargo run -p qualify)");
    }
    out
}
