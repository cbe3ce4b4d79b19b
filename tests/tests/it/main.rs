//! The cluster-level tests, one binary: a module per area.

mod fuzz;
mod postgres_restart;
mod replays;
mod storage;
