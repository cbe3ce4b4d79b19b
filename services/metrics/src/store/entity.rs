//! Tables owned by metrics. Every row carries its tenant.

/// Pipeline quotas per owner and month.
pub mod quota {
    use sea_orm::entity::prelude::*;

    /// One quota.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "quotas")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub period: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub owner_kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub owner_id: String,
        pub amount_minor: i64,
        pub currency_code: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Where ingestion of each upstream stream stands.
pub mod cursor {
    use sea_orm::entity::prelude::*;

    /// One stream's position.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stream_cursors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub stream: String,
        pub applied_sequence: i64,
        pub applied_events: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Event ids already applied (at-least-once delivery, applied once).
pub mod processed {
    use sea_orm::entity::prelude::*;

    /// One applied event.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "processed_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What metrics remembers of a lead: its slice and when it entered each cohort.
pub mod lead_fact {
    use sea_orm::entity::prelude::*;

    /// One lead.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "lead_facts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub lead_id: String,
        /// Whether the lead's creation has been seen (its slice is known).
        pub known: bool,
        /// Month the lead was created.
        pub created_period: Option<String>,
        pub source: String,
        pub segment: String,
        pub rep: String,
        pub campaign: String,
        pub mql_period: Option<String>,
        pub sql_period: Option<String>,
        /// An opportunity of the lead was accepted (seen on the other stream, maybe first).
        pub reached_sqo: bool,
        /// An opportunity of the lead was won.
        pub reached_won: bool,
        /// Its contact ("" when unknown).
        pub contact_id: String,
        /// How it is counted by its contact's reach ("", "verified", "bounced").
        pub reach: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What metrics remembers of an opportunity.
pub mod opportunity_fact {
    use sea_orm::entity::prelude::*;

    /// One opportunity.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "opportunity_facts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub opportunity_id: String,
        pub lead_id: String,
        pub source: String,
        pub segment: String,
        pub team: String,
        pub rep: String,
        pub campaign: String,
        pub amount_minor: i64,
        pub currency_code: String,
        pub expansion: bool,
        pub accept_period: Option<String>,
        pub accepted_at: Option<ChronoDateTimeUtc>,
        pub meaningful_activity: bool,
        pub closed: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Roll-ups: one counter per tenant, month, slice and figure.
pub mod rollup {
    use sea_orm::entity::prelude::*;

    /// One counter.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "funnel_rollups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        /// Which dimensions the row keeps (see `crate::rollup::Grain`); the others are empty.
        #[sea_orm(primary_key, auto_increment = false)]
        pub grain: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub period: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub team: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub rep: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub figure: String,
        pub value: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Each tenant's reporting currency, once chosen.
pub mod reporting_currency {
    use sea_orm::entity::prelude::*;

    /// One tenant's choice.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reporting_currencies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub currency_code: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Exchange rates into a tenant's reporting currency, per month and currency.
pub mod exchange_rate {
    use sea_orm::entity::prelude::*;

    /// One rate.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "exchange_rates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub period: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub currency_code: String,
        /// Billionths of the reporting currency one unit buys.
        pub rate_nanos: i64,
        /// The reporting currency it converts into.
        pub reporting_code: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What metrics remembers of a contact: the latest finding per channel and its leads.
pub mod contact_fact {
    use sea_orm::entity::prelude::*;

    /// One contact.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact_facts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact_id: String,
        pub email_status: String,
        pub phone_status: String,
        /// The leads created with it, comma-separated (ids never hold a comma).
        pub lead_ids: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
