//! Storage: the tables (entities), the migrations that shape them, and the
//! queries of the service. Rows never leave this folder's callers as wire types.

pub mod entity;
pub mod leads;
pub mod migration;
pub mod scorecards;
