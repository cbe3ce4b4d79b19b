//! Tables owned by opportunity acceptance. Every row carries its tenant.

/// Gate policies, one per tenant and segment.
pub mod gate_policy {
    use sea_orm::entity::prelude::*;

    /// A stored policy.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "gate_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment: String,
        pub framework: String,
        /// Comma-separated criterion names; empty means the framework default.
        pub required_criteria: String,
        pub require_economic_buyer: bool,
        pub require_champion: bool,
        pub min_stakeholders: i32,
        pub require_next_step: bool,
        pub contact_max_age_days: i32,
        pub min_score: i32,
        pub version: i64,
        pub updated_at: ChronoDateTimeUtc,
        pub updated_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
