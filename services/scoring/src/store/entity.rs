//! Tables owned by lead scoring. Every row carries its tenant.

/// Accounts.
pub mod account {
    use sea_orm::entity::prelude::*;

    /// A company.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub display_name: String,
        pub industry: String,
        pub employee_count: i32,
        pub revenue_band: String,
        pub region: String,
        pub segment: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Leads.
pub mod lead {
    use sea_orm::entity::prelude::*;

    /// A lead.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "leads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub lead_id: String,
        pub account_id: String,
        pub source: String,
        pub campaign: String,
        pub owner_sdr: String,
        pub stage: String,
        pub contact_id: Option<String>,
        /// The last stored score, a versioned JSON document (see `store::leads`), if any.
        pub score_doc: Option<String>,
        pub score_total: Option<i32>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        /// The most recent signals packed by `qualify_domain::scoring::signal_log`
        /// (`None`: none yet), kept in the ingest transaction so that a stored
        /// score reads one row; the `signals` table stays the record.
        pub signal_log: Option<Vec<u8>>,
        /// Written by an importer with its past times (ImportLeads), not live.
        pub imported: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Contacts.
pub mod contact {
    use sea_orm::entity::prelude::*;

    /// A person at an account.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact_id: String,
        pub account_id: String,
        pub full_name: String,
        pub title: String,
        pub seniority: String,
        pub department: String,
        pub buying_role: Option<String>,
        pub email: String,
        pub email_status: String,
        pub email_verified_at: Option<ChronoDateTimeUtc>,
        pub phone: String,
        pub phone_status: String,
        pub phone_verified_at: Option<ChronoDateTimeUtc>,
        pub email_verify_provider: String,
        pub phone_verify_provider: String,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Engagement signals, deduplicated by the client's signal id.
pub mod signal {
    use sea_orm::entity::prelude::*;

    /// One signal.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub signal_id: String,
        pub lead_id: String,
        pub account_id: String,
        pub contact_id: Option<String>,
        pub kind: String,
        /// Part of the key: the table is partitioned by it on PostgreSQL.
        #[sea_orm(primary_key, auto_increment = false)]
        pub occurred_at: ChronoDateTimeUtc,
        pub received_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Published scorecard versions; immutable once written.
pub mod scorecard {
    use sea_orm::entity::prelude::*;

    /// One version.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "scorecards")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        /// Segment name, or "default".
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        /// The rules, a versioned JSON document (see `store::scorecards`).
        pub doc: String,
        pub published_by: String,
        pub published_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every stage change of every lead.
pub mod stage_change {
    use sea_orm::entity::prelude::*;

    /// One change.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "lead_stage_changes")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub lead_id: String,
        pub from_stage: String,
        pub to_stage: String,
        pub actor: String,
        pub actor_roles: String,
        pub reason: String,
        pub score: i32,
        pub scorecard_version: i64,
        pub changed_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The positions pipelines' signal streams have reached.
pub mod signal_stream {
    use sea_orm::entity::prelude::*;

    /// A stream's acknowledged position.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signal_streams")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub stream_id: String,
        pub position: i64,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
