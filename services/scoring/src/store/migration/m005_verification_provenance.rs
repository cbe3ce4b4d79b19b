//! M005: verification has provenance. Each channel of a contact keeps the
//! provider whose finding set its status. Before this release any caller
//! could store VERIFIED, so what is stored as verified becomes self-reported:
//! only a verifier's finding, recorded from now on, is trusted again.

use sea_orm_migration::prelude::*;

use super::frozen::Contacts as C;

/// The provider columns, and every earlier "verified" turned self-reported.
pub struct M005VerificationProvenance;

impl MigrationName for M005VerificationProvenance {
    fn name(&self) -> &str {
        "m20261204_000005_verification_provenance"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M005VerificationProvenance {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in [C::EmailVerifyProvider, C::PhoneVerifyProvider] {
            m.alter_table(
                Table::alter()
                    .table(C::Table)
                    .add_column(ColumnDef::new(column).string().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        }
        let db = m.get_connection();
        for status in ["email_status", "phone_status"] {
            db.execute_unprepared(&format!(
                "UPDATE contacts SET {status} = 'self_reported' WHERE {status} = 'verified'"
            ))
            .await?;
        }
        Ok(())
    }
}
