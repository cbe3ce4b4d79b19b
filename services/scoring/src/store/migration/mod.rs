//! Schema of lead scoring; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

mod m001_accounts_leads;
mod m002_contacts_signals_scorecards;
mod m003_signal_log;
mod m004_domain_documents;
mod m005_verification_provenance;
mod m006_signal_streams;
mod m007_signal_partitions;
mod m008_imported_leads;

/// The tables as these migrations made them: each migration names its own
/// columns, so a later change to the service's entities never changes what
/// an old migration does.
pub(crate) mod frozen {
    use sea_orm_migration::prelude::*;

    #[derive(DeriveIden)]
    pub enum Accounts {
        #[sea_orm(iden = "accounts")]
        Table,
        TenantId,
        AccountId,
        DisplayName,
        Industry,
        EmployeeCount,
        RevenueBand,
        Region,
        Segment,
        Version,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum Leads {
        #[sea_orm(iden = "leads")]
        Table,
        TenantId,
        LeadId,
        AccountId,
        Source,
        Campaign,
        OwnerSdr,
        Stage,
        ContactId,
        Score,
        ScoreTotal,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum Contacts {
        #[sea_orm(iden = "contacts")]
        Table,
        TenantId,
        ContactId,
        AccountId,
        FullName,
        Title,
        Seniority,
        Department,
        BuyingRole,
        Email,
        EmailStatus,
        EmailVerifiedAt,
        Phone,
        PhoneStatus,
        PhoneVerifiedAt,
        EmailVerifyProvider,
        PhoneVerifyProvider,
        Version,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum Signals {
        #[sea_orm(iden = "signals")]
        Table,
        TenantId,
        SignalId,
        LeadId,
        AccountId,
        ContactId,
        Kind,
        OccurredAt,
        ReceivedAt,
    }

    #[derive(DeriveIden)]
    pub enum Scorecards {
        #[sea_orm(iden = "scorecards")]
        Table,
        TenantId,
        Segment,
        Version,
        Body,
        PublishedBy,
        PublishedAt,
    }

    #[derive(DeriveIden)]
    pub enum StageChanges {
        #[sea_orm(iden = "lead_stage_changes")]
        Table,
        Id,
        TenantId,
        LeadId,
        FromStage,
        ToStage,
        Actor,
        ActorRoles,
        Reason,
        Score,
        ScorecardVersion,
        ChangedAt,
    }
}

/// All migrations, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(qualify_platform::idempotency::Migration),
            Box::new(qualify_platform::outbox::Migration),
            Box::new(M001AccountsLeads),
            Box::new(M002ContactsSignalsScorecards),
            Box::new(M003SignalLog),
            Box::new(qualify_platform::outbox::UnstampedIndex),
            Box::new(qualify_platform::db::Reindex {
                name: "m20261123_000002_discriminating_indexes",
                indexes: &[
                    ("idx_leads_account", "leads", &["account_id", "tenant_id"]),
                    ("idx_contacts_account", "contacts", &["account_id", "tenant_id"]),
                    ("idx_signals_lead", "signals", &["lead_id", "tenant_id", "occurred_at"]),
                    ("idx_signals_account", "signals", &["account_id", "tenant_id", "occurred_at"]),
                    ("idx_stage_changes_lead", "lead_stage_changes", &["lead_id", "tenant_id", "id"]),
                ],
            }),
            Box::new(qualify_platform::outbox::StampFunction),
            Box::new(M004DomainDocuments),
            Box::new(qualify_platform::idempotency::SubjectColumn),
            Box::new(qualify_platform::follow::Migration),
            Box::new(M005VerificationProvenance),
            Box::new(M006SignalStreams),
            Box::new(M007SignalPartitions),
            Box::new(M008ImportedLeads),
        ]
    }
}

pub use m001_accounts_leads::M001AccountsLeads;
pub use m002_contacts_signals_scorecards::M002ContactsSignalsScorecards;
pub use m003_signal_log::M003SignalLog;
pub use m004_domain_documents::M004DomainDocuments;
pub use m005_verification_provenance::M005VerificationProvenance;
pub use m006_signal_streams::M006SignalStreams;
pub use m007_signal_partitions::M007SignalPartitions;
pub use m008_imported_leads::M008ImportedLeads;
