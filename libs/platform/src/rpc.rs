//! The one unary adapter every service's gRPC trait goes through: it takes
//! the caller verified by [`crate::Authenticator`], runs the use case, and
//! maps its [`ApiError`] to a `google.rpc` status of the service's domain.
//!
//! ```ignore
//! async fn get_lead(&self, r: Request<pb::GetLeadRequest>) -> Result<Response<pb::GetLeadResponse>, Status> {
//!     rpc::unary(DOMAIN, r, |call, m| self.get_lead(call.caller, m)).await
//! }
//! ```

use std::future::Future;

use qualify_domain::Caller;
use tonic::{Request, Response, Status};

use crate::auth::BearerToken;
use crate::error::ApiError;

/// A verified call: who makes it, and the token it came with, so a service
/// can call another on the caller's behalf.
#[derive(Debug, Clone)]
pub struct Call {
    /// The verified caller.
    pub caller: Caller,
    /// The bearer token the caller presented.
    pub bearer: String,
}

impl Call {
    /// What a call to another service on this caller's behalf carries.
    pub fn on_behalf(&self) -> crate::auth::credentials::OnBehalf {
        crate::auth::credentials::OnBehalf { tenant: self.caller.tenant.clone(), bearer: self.bearer.clone() }
    }
}

/// The verified call of a request that went through the authenticator.
pub fn call<T>(request: &Request<T>) -> Result<Call, ApiError> {
    let caller = crate::auth::caller(request)?;
    let bearer = request.extensions().get::<BearerToken>().map(|t| t.0.clone()).unwrap_or_default();
    Ok(Call { caller, bearer })
}

/// Runs one unary RPC: `handle` gets the verified call and the decoded
/// message; its error becomes the status, with `domain` in its ErrorInfo.
pub async fn unary<Req, Resp, F, Fut>(domain: &str, request: Request<Req>, handle: F) -> Result<Response<Resp>, Status>
where
    F: FnOnce(Call, Req) -> Fut,
    Fut: Future<Output = Result<Resp, ApiError>>,
{
    let call = call(&request).map_err(|e| e.into_status(domain))?;
    handle(call, request.into_inner()).await.map(Response::new).map_err(|e| e.into_status(domain))
}
