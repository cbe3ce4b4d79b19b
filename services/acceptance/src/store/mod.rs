//! Storage: the tables (entities), the migrations that shape them, and the
//! queries of the service, one module per table (or per aggregate's tables),
//! taking and returning domain types.

pub mod calibration;
pub mod entity;
pub mod migration;
pub mod opportunities;
pub mod policies;
