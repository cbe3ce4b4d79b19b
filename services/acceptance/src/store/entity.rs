//! Tables owned by opportunity acceptance. Every row carries its tenant.
//!
//! Rows hold domain data: the opportunity aggregate's records are versioned
//! JSON documents of the domain types (`doc`, see `store::opportunities`),
//! beside copies of the fields queries filter on. The time columns are for
//! queries only: PostgreSQL keeps microseconds, the documents keep the exact times.

/// Gate policies: every version published per tenant and segment; the
/// highest is in force.
pub mod gate_policy {
    use sea_orm::entity::prelude::*;

    /// A published policy version.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "gate_policy_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        pub framework: String,
        /// Comma-separated criterion names; empty means the framework default.
        pub required_criteria: String,
        pub require_economic_buyer: bool,
        pub require_champion: bool,
        pub min_stakeholders: i32,
        pub require_next_step: bool,
        pub contact_max_age_days: i32,
        pub min_score: i32,
        pub updated_at: ChronoDateTimeUtc,
        pub updated_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Opportunities: the record in `doc`, with the columns queries filter on.
pub mod opportunity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "opportunities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub opportunity_id: String,
        pub lead_id: String,
        pub state: String,
        pub team: String,
        pub submitted_by: String,
        pub version: i64,
        pub accepted_at: Option<ChronoDateTimeUtc>,
        pub first_meaningful_at: Option<ChronoDateTimeUtc>,
        pub created_at: ChronoDateTimeUtc,
        /// The opportunity (`store::opportunities`), everything but its key.
        pub doc: String,
        /// The lead, while this is its live ordinary opportunity (unique per tenant).
        pub live_lead: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Decisions: immutable audit rows; the record in `doc`.
pub mod decision {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "decisions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub decision_id: String,
        pub opportunity_id: String,
        pub kind: String,
        pub team: String,
        pub decided_by: String,
        pub decided_at: ChronoDateTimeUtc,
        /// The decision (`store::opportunities`), everything but its key.
        pub doc: String,
        /// Taken in a CRM and imported: never drawn for calibration.
        pub imported: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Activities on accepted opportunities; the record in `doc`.
pub mod activity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "activities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub activity_id: String,
        pub opportunity_id: String,
        pub meaningful: bool,
        pub occurred_at: ChronoDateTimeUtc,
        /// The activity (`store::opportunities`), everything but its key.
        pub doc: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Calibration samples: the decisions drawn, in draw order.
pub mod calibration_sample {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "calibration_samples")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub sample_id: String,
        pub team: String,
        pub decision_ids: String,
        pub created_by: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One reviewer's verdict on one sampled decision (the latest per reviewer counts).
pub mod calibration_review {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "calibration_reviews")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub sample_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub decision_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub reviewer: String,
        pub original_accept: bool,
        pub agree: bool,
        pub note: String,
        pub reviewed_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
