//! Schema of opportunity acceptance; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use crate::store::entity::{activity, calibration_review, calibration_sample, decision, gate_policy, opportunity};

/// All migrations, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(qualify_platform::idempotency::Migration),
            Box::new(qualify_platform::outbox::Migration),
            Box::new(M001GatePolicies),
            Box::new(M002Opportunities),
            Box::new(qualify_platform::outbox::UnstampedIndex),
            Box::new(qualify_platform::db::Reindex {
                name: "m20261123_000002_discriminating_indexes",
                indexes: &[
                    ("idx_opportunities_state", "opportunities", &["state", "tenant_id", "accepted_at"]),
                    ("idx_decisions_opportunity", "decisions", &["opportunity_id", "tenant_id"]),
                ],
            }),
            Box::new(qualify_platform::outbox::StampFunction),
        ]
    }
}

/// Gate policies.
pub struct M001GatePolicies;

impl MigrationName for M001GatePolicies {
    fn name(&self) -> &str {
        "m20261122_000001_gate_policies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M001GatePolicies {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use gate_policy::Column as G;
        m.create_table(
            Table::create()
                .table(gate_policy::Entity)
                .col(ColumnDef::new(G::TenantId).string().not_null())
                .col(ColumnDef::new(G::Segment).string().not_null())
                .col(ColumnDef::new(G::Framework).string().not_null())
                .col(ColumnDef::new(G::RequiredCriteria).string().not_null())
                .col(ColumnDef::new(G::RequireEconomicBuyer).boolean().not_null())
                .col(ColumnDef::new(G::RequireChampion).boolean().not_null())
                .col(ColumnDef::new(G::MinStakeholders).integer().not_null())
                .col(ColumnDef::new(G::RequireNextStep).boolean().not_null())
                .col(ColumnDef::new(G::ContactMaxAgeDays).integer().not_null())
                .col(ColumnDef::new(G::MinScore).integer().not_null())
                .col(ColumnDef::new(G::Version).big_integer().not_null())
                .col(ColumnDef::new(G::UpdatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(G::UpdatedBy).string().not_null())
                .primary_key(Index::create().col(G::TenantId).col(G::Segment))
                .to_owned(),
        )
        .await
    }
}

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
        use activity::Column as A;
        use calibration_review::Column as R;
        use calibration_sample::Column as S;
        use decision::Column as D;
        use opportunity::Column as O;
        m.create_table(
            Table::create()
                .table(opportunity::Entity)
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
                .table(opportunity::Entity)
                .col(O::TenantId)
                .col(O::State)
                .col(O::AcceptedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(decision::Entity)
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
                .table(decision::Entity)
                .col(D::TenantId)
                .col(D::OpportunityId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_decisions_period")
                .table(decision::Entity)
                .col(D::TenantId)
                .col(D::DecidedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(activity::Entity)
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
                .table(calibration_sample::Entity)
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
                .table(calibration_review::Entity)
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
