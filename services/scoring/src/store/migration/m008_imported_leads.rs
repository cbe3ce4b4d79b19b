//! M008: leads say whether an importer wrote them (with their past times) or
//! they were created live.

use sea_orm_migration::prelude::*;

/// The `imported` flag of leads.
pub struct M008ImportedLeads;

impl MigrationName for M008ImportedLeads {
    fn name(&self) -> &str {
        "m20261207_000008_imported_leads"
    }
}

#[derive(DeriveIden)]
enum Leads {
    #[sea_orm(iden = "leads")]
    Table,
    Imported,
}

#[async_trait::async_trait]
impl MigrationTrait for M008ImportedLeads {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .add_column(ColumnDef::new(Leads::Imported).boolean().not_null().default(false))
                .to_owned(),
        )
        .await
    }
}
