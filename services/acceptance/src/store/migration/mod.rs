//! Schema of opportunity acceptance; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

mod m001_gate_policies;
mod m002_opportunities;
mod m003_domain_documents;
mod m004_policy_versions;
mod m005_live_opportunities;
mod m006_imported_decisions;

/// The tables as these migrations made them: each migration names its own
/// columns, so a later change to the service's entities never changes what
/// an old migration does.
pub(crate) mod frozen {
    use sea_orm_migration::prelude::*;

    #[derive(DeriveIden, Clone, Copy)]
    pub enum GatePolicies {
        #[sea_orm(iden = "gate_policies")]
        Table,
        TenantId,
        Segment,
        Framework,
        RequiredCriteria,
        RequireEconomicBuyer,
        RequireChampion,
        MinStakeholders,
        RequireNextStep,
        ContactMaxAgeDays,
        MinScore,
        Version,
        UpdatedAt,
        UpdatedBy,
    }

    #[derive(DeriveIden, Clone, Copy)]
    pub enum GatePolicyVersions {
        #[sea_orm(iden = "gate_policy_versions")]
        Table,
        TenantId,
        Segment,
        Version,
        Framework,
        RequiredCriteria,
        RequireEconomicBuyer,
        RequireChampion,
        MinStakeholders,
        RequireNextStep,
        ContactMaxAgeDays,
        MinScore,
        UpdatedAt,
        UpdatedBy,
    }

    #[derive(DeriveIden, Clone, Copy)]
    pub enum Opportunities {
        #[sea_orm(iden = "opportunities")]
        Table,
        TenantId,
        OpportunityId,
        LeadId,
        State,
        Team,
        SubmittedBy,
        Version,
        AcceptedAt,
        FirstMeaningfulAt,
        CreatedAt,
        Body,
        LiveLead,
    }

    #[derive(DeriveIden, Clone, Copy)]
    pub enum Decisions {
        #[sea_orm(iden = "decisions")]
        Table,
        TenantId,
        DecisionId,
        OpportunityId,
        Kind,
        Team,
        DecidedBy,
        DecidedAt,
        Body,
    }

    #[derive(DeriveIden, Clone, Copy)]
    pub enum Activities {
        #[sea_orm(iden = "activities")]
        Table,
        TenantId,
        ActivityId,
        OpportunityId,
        Meaningful,
        OccurredAt,
        Body,
    }

    #[derive(DeriveIden)]
    pub enum CalibrationSamples {
        #[sea_orm(iden = "calibration_samples")]
        Table,
        TenantId,
        SampleId,
        Team,
        DecisionIds,
        CreatedBy,
        CreatedAt,
    }

    #[derive(DeriveIden)]
    pub enum CalibrationReviews {
        #[sea_orm(iden = "calibration_reviews")]
        Table,
        TenantId,
        SampleId,
        DecisionId,
        Reviewer,
        OriginalAccept,
        Agree,
        Note,
        ReviewedAt,
    }
}

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
            Box::new(M003DomainDocuments),
            Box::new(qualify_platform::idempotency::SubjectColumn),
            Box::new(m004_policy_versions::M004PolicyVersions),
            Box::new(m005_live_opportunities::M005LiveOpportunities),
            Box::new(m006_imported_decisions::M006ImportedDecisions),
        ]
    }
}

pub use m001_gate_policies::M001GatePolicies;
pub use m002_opportunities::M002Opportunities;
pub use m003_domain_documents::M003DomainDocuments;
