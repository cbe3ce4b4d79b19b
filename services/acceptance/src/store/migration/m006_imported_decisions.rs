//! M006: decisions say whether they were taken in a CRM and imported, so a
//! calibration sample draws live decisions only.

use sea_orm_migration::prelude::*;

/// The `imported` flag of decisions.
pub struct M006ImportedDecisions;

impl MigrationName for M006ImportedDecisions {
    fn name(&self) -> &str {
        "m20261207_000006_imported_decisions"
    }
}

#[derive(DeriveIden)]
enum Decisions {
    #[sea_orm(iden = "decisions")]
    Table,
    Imported,
}

#[async_trait::async_trait]
impl MigrationTrait for M006ImportedDecisions {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Decisions::Table)
                .add_column(ColumnDef::new(Decisions::Imported).boolean().not_null().default(false))
                .to_owned(),
        )
        .await
    }
}
