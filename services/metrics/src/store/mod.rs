//! Storage: the tables (entities), the migrations that shape them, and the
//! queries of the service, one module per table (or pair of tables), the
//! PostgreSQL and SQLite paths side by side. Rows hold domain data, never
//! wire types.

mod bulk;
pub(crate) mod currency;
pub mod entity;
pub(crate) mod facts;
pub mod migration;
pub(crate) mod quota;
pub(crate) mod rollup;
pub(crate) mod stream;
