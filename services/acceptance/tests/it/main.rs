//! Opportunity acceptance's integration tests, one binary: a module per area.
//! The tracing test is a binary of its own (`tests/tracing.rs`): it installs
//! the process-wide span collector.

mod crash;
mod crossing;
mod gate;
mod identity;
mod opportunities;
mod tls;
mod trust;
