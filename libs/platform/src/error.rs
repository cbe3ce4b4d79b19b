//! One error type for every service, mapped to gRPC status codes with
//! google.rpc error details (AIP-193) in one table. Internal causes are
//! logged, never sent.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, for example `account.employee_count`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// A precondition that does not hold (AIP-216).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// Kind of precondition, UPPER_SNAKE_CASE.
    pub kind: String,
    /// What it concerns.
    pub subject: String,
    /// Explanation.
    pub description: String,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input; nothing was changed.
    #[error("invalid argument")]
    InvalidArgument(Vec<FieldViolation>),
    /// The idempotency key was used before with another payload.
    #[error("request_id was already used with a different request")]
    IdempotencyKeyReused,
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller may not do this.
    #[error("{message}")]
    PermissionDenied {
        /// ErrorInfo reason.
        reason: &'static str,
        /// Explanation.
        message: String,
    },
    /// The resource does not exist (in the caller's tenant).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// Resource kind.
        kind: &'static str,
        /// Resource id.
        id: String,
    },
    /// The resource exists already.
    #[error("{kind} {id:?} already exists")]
    AlreadyExists {
        /// Resource kind.
        kind: &'static str,
        /// Resource id.
        id: String,
    },
    /// The system is not in a state that allows this.
    #[error("{message}")]
    FailedPrecondition {
        /// ErrorInfo reason.
        reason: &'static str,
        /// Explanation.
        message: String,
        /// What does not hold.
        violations: Vec<PreconditionViolation>,
    },
    /// A concurrent change won; read again and retry (AIP-154).
    #[error("{0}")]
    Aborted(String),
    /// Too many requests: the server or the tenant's quota is at its limit;
    /// nothing was done, retry after the hinted delay.
    #[error("{message}")]
    ResourceExhausted {
        /// ErrorInfo reason: SERVER_OVERLOADED or TENANT_RATE_LIMITED.
        reason: &'static str,
        /// Explanation.
        message: String,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// A dependency did not answer; retry later.
    #[error("{dependency} is unavailable")]
    Unavailable {
        /// Which dependency.
        dependency: &'static str,
    },
    /// Anything else: logged with its cause, sent as a bare INTERNAL.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A single field violation.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument(vec![FieldViolation { field: field.into(), description: description.into() }])
    }

    /// A permission refusal.
    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::PermissionDenied { reason, message: message.into() }
    }

    /// The gRPC status for this error, with `domain` (the service) in its ErrorInfo.
    pub fn into_status(self, domain: &str) -> Status {
        let mut details = ErrorDetails::new();
        let no_meta = HashMap::<String, String>::new;
        let (code, message) = match self {
            ApiError::InvalidArgument(violations) => {
                let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
                let message = format!("invalid {}", fields.join(", "));
                details.set_error_info("INVALID_FIELD", domain, no_meta());
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                (Code::InvalidArgument, message)
            }
            e @ ApiError::IdempotencyKeyReused => {
                details.set_error_info("IDEMPOTENCY_KEY_REUSED", domain, no_meta());
                details.add_bad_request_violation("request_id", "already used with a different request");
                (Code::InvalidArgument, e.to_string())
            }
            ApiError::Unauthenticated(message) => {
                details.set_error_info("UNAUTHENTICATED", domain, no_meta());
                (Code::Unauthenticated, message.to_string())
            }
            ApiError::PermissionDenied { reason, message } => {
                details.set_error_info(reason, domain, no_meta());
                (Code::PermissionDenied, message)
            }
            e @ ApiError::NotFound { .. } => {
                details.set_error_info("NOT_FOUND", domain, no_meta());
                (Code::NotFound, e.to_string())
            }
            e @ ApiError::AlreadyExists { .. } => {
                details.set_error_info("ALREADY_EXISTS", domain, no_meta());
                (Code::AlreadyExists, e.to_string())
            }
            ApiError::FailedPrecondition { reason, message, violations } => {
                details.set_error_info(reason, domain, no_meta());
                for v in violations {
                    details.add_precondition_failure_violation(v.kind, v.subject, v.description);
                }
                (Code::FailedPrecondition, message)
            }
            ApiError::Aborted(message) => {
                details.set_error_info("CONCURRENT_MODIFICATION", domain, no_meta());
                (Code::Aborted, message)
            }
            ApiError::ResourceExhausted { reason, message, retry_after } => {
                details.set_error_info(reason, domain, no_meta());
                details.set_retry_info(Some(retry_after));
                (Code::ResourceExhausted, message)
            }
            e @ ApiError::Unavailable { .. } => {
                details.set_error_info("DEPENDENCY_UNAVAILABLE", domain, no_meta());
                details.set_retry_info(Some(Duration::from_millis(500)));
                (Code::Unavailable, e.to_string())
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                details.set_error_info("INTERNAL", domain, no_meta());
                (Code::Internal, "internal error".to_string())
            }
        };
        Status::with_error_details(code, message, details)
    }
}

impl From<qualify_domain::Denied> for ApiError {
    fn from(d: qualify_domain::Denied) -> Self {
        ApiError::forbidden(d.reason, d.message)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        if lost_the_database(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::Unavailable { dependency: "database" };
        }
        ApiError::Internal(e.into())
    }
}

/// Whether `e` means the database could not be reached or went away mid-statement (a restart, a
/// failover, a network cut) rather than that the statement was wrong: the caller may retry.
fn lost_the_database(e: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx = match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => s,
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P0x (admin or crash shutdown, cannot
        // connect now).
        Sqlx::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        Sqlx::Protocol(m) => m.contains("closed") || m.contains("unexpected"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation_and_error_info() {
        let e = ApiError::InvalidArgument(vec![
            FieldViolation { field: "lead.lead_id".into(), description: "required".into() },
            FieldViolation { field: "page_size".into(), description: "negative".into() },
        ]);
        let s = e.into_status("scoring.qualify.dev");
        assert_eq!(s.code(), Code::InvalidArgument);
        let d = s.get_error_details();
        let fields: Vec<_> = d.bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, ["lead.lead_id", "page_size"]);
        let info = d.error_info().unwrap();
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("INVALID_FIELD", "scoring.qualify.dev"));
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let s = ApiError::Internal(anyhow::anyhow!("password=hunter2 at db:5432")).into_status("x");
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("hunter2"));
    }

    #[test]
    fn unavailable_tells_clients_when_to_retry() {
        let s = ApiError::Unavailable { dependency: "lead scoring" }.into_status("x");
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.get_error_details().retry_info().is_some());
    }
}
