//! Storage: the tables (entities), the migrations that shape them, and the
//! queries of the service. Rows never leave this folder's callers as wire types.

pub mod accounts;
pub mod contacts;
pub mod entity;
pub mod leads;
pub mod migration;
pub mod scorecards;
pub mod signals;

use qualify_platform::ApiError;
use qualify_platform::db::is_unique_violation;
use sea_orm::DbErr;

/// The error of an insert keyed by `id`: ALREADY_EXISTS when the key is taken.
fn insert_error<'a>(kind: &'static str, id: &'a str) -> impl FnOnce(DbErr) -> ApiError + 'a {
    move |e| {
        if is_unique_violation(&e) { ApiError::AlreadyExists { kind, id: id.to_string() } } else { e.into() }
    }
}
