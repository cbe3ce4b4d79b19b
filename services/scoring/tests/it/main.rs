//! Lead scoring's integration tests, one binary: a module per area.

mod api;
mod history;
mod ingestion;
mod migrations;
mod protection;
mod retention;
mod scoring;
mod verification;
