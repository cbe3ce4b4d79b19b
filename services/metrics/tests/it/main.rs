//! Metrics' integration tests, one binary: a module per area.

mod crash;
mod currencies;
mod funnel;
mod history;
mod quotas;
mod reach;
mod replicas;
