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
