//! Generated gRPC code for the Qualify contracts, and the conversions between
//! wire types and the domain model. Handlers decode with these conversions and
//! never let a `pb` type reach a business rule.

#![allow(missing_docs, clippy::all, clippy::unwrap_used)]

/// Generated modules, laid out as the proto packages.
pub mod qualify {
    /// `qualify.common.v1`.
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("qualify.common.v1");
        }
    }
    /// `qualify.scoring.v1`.
    pub mod scoring {
        pub mod v1 {
            tonic::include_proto!("qualify.scoring.v1");
        }
    }
    /// `qualify.acceptance.v1`.
    pub mod acceptance {
        pub mod v1 {
            tonic::include_proto!("qualify.acceptance.v1");
        }
    }
    /// `qualify.metrics.v1`.
    pub mod metrics {
        pub mod v1 {
            tonic::include_proto!("qualify.metrics.v1");
        }
    }
}

pub use qualify::acceptance::v1 as acceptance;
pub use qualify::common::v1 as common;
pub use qualify::metrics::v1 as metrics;
pub use qualify::scoring::v1 as scoring;

/// Encoded `FileDescriptorSet` of every Qualify proto and its imports, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/qualify_descriptor.bin"));

pub mod convert;
