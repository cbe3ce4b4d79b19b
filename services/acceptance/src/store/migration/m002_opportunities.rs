//! M002: opportunities, decisions, activities and calibration.

use sea_orm_migration::prelude::*;

use super::frozen::{Activities, CalibrationReviews, CalibrationSamples, Decisions, Opportunities};

/// Opportunities, decisions, activities and calibration.
pub struct M002Opportunities;

impl MigrationName for M002Opportunities {
    fn name(&self) -> &str {
        "m20261123_000001_opportunities"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M002Opportunities {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use Activities as A;
        use CalibrationReviews as R;
        use CalibrationSamples as S;
        use Decisions as D;
        use Opportunities as O;
        m.create_table(
            Table::create()
                .table(O::Table)
                .col(ColumnDef::new(O::TenantId).string().not_null())
                .col(ColumnDef::new(O::OpportunityId).string().not_null())
                .col(ColumnDef::new(O::LeadId).string().not_null())
                .col(ColumnDef::new(O::State).string().not_null())
                .col(ColumnDef::new(O::Team).string().not_null())
                .col(ColumnDef::new(O::SubmittedBy).string().not_null())
                .col(ColumnDef::new(O::Version).big_integer().not_null())
                .col(ColumnDef::new(O::AcceptedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(O::FirstMeaningfulAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(O::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(O::Body).blob().not_null())
                .primary_key(Index::create().col(O::TenantId).col(O::OpportunityId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_opportunities_state")
                .table(O::Table)
                .col(O::TenantId)
                .col(O::State)
                .col(O::AcceptedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(D::Table)
                .col(ColumnDef::new(D::TenantId).string().not_null())
                .col(ColumnDef::new(D::DecisionId).string().not_null())
                .col(ColumnDef::new(D::OpportunityId).string().not_null())
                .col(ColumnDef::new(D::Kind).string().not_null())
                .col(ColumnDef::new(D::Team).string().not_null())
                .col(ColumnDef::new(D::DecidedBy).string().not_null())
                .col(ColumnDef::new(D::DecidedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(D::Body).blob().not_null())
                .primary_key(Index::create().col(D::TenantId).col(D::DecisionId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_decisions_opportunity")
                .table(D::Table)
                .col(D::TenantId)
                .col(D::OpportunityId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_decisions_period").table(D::Table).col(D::TenantId).col(D::DecidedAt).to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(A::Table)
                .col(ColumnDef::new(A::TenantId).string().not_null())
                .col(ColumnDef::new(A::ActivityId).string().not_null())
                .col(ColumnDef::new(A::OpportunityId).string().not_null())
                .col(ColumnDef::new(A::Meaningful).boolean().not_null())
                .col(ColumnDef::new(A::OccurredAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(A::Body).blob().not_null())
                .primary_key(Index::create().col(A::TenantId).col(A::ActivityId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(S::Table)
                .col(ColumnDef::new(S::TenantId).string().not_null())
                .col(ColumnDef::new(S::SampleId).string().not_null())
                .col(ColumnDef::new(S::Team).string().not_null())
                .col(ColumnDef::new(S::DecisionIds).text().not_null())
                .col(ColumnDef::new(S::CreatedBy).string().not_null())
                .col(ColumnDef::new(S::CreatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(S::TenantId).col(S::SampleId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(R::Table)
                .col(ColumnDef::new(R::TenantId).string().not_null())
                .col(ColumnDef::new(R::SampleId).string().not_null())
                .col(ColumnDef::new(R::DecisionId).string().not_null())
                .col(ColumnDef::new(R::Reviewer).string().not_null())
                .col(ColumnDef::new(R::OriginalAccept).boolean().not_null())
                .col(ColumnDef::new(R::Agree).boolean().not_null())
                .col(ColumnDef::new(R::Note).text().not_null())
                .col(ColumnDef::new(R::ReviewedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(R::TenantId).col(R::SampleId).col(R::DecisionId).col(R::Reviewer))
                .to_owned(),
        )
        .await
    }
}
