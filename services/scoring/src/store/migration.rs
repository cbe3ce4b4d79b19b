//! Schema of lead scoring; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use qualify_domain::scoring::signal_log;

use frozen::{Accounts, Contacts, Leads, Scorecards, Signals, StageChanges};

/// The tables as these migrations made them: each migration names its own
/// columns, so a later change to the service's entities never changes what
/// an old migration does.
mod frozen {
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
        ]
    }
}

/// Accounts and leads.
pub struct M001AccountsLeads;

impl MigrationName for M001AccountsLeads {
    fn name(&self) -> &str {
        "m20261122_000001_accounts_leads"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M001AccountsLeads {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use Accounts as A;
        m.create_table(
            Table::create()
                .table(Accounts::Table)
                .col(ColumnDef::new(A::TenantId).string().not_null())
                .col(ColumnDef::new(A::AccountId).string().not_null())
                .col(ColumnDef::new(A::DisplayName).string().not_null())
                .col(ColumnDef::new(A::Industry).string().not_null())
                .col(ColumnDef::new(A::EmployeeCount).integer().not_null())
                .col(ColumnDef::new(A::RevenueBand).string().not_null())
                .col(ColumnDef::new(A::Region).string().not_null())
                .col(ColumnDef::new(A::Segment).string().null())
                .col(ColumnDef::new(A::Version).big_integer().not_null())
                .col(ColumnDef::new(A::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(A::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(A::TenantId).col(A::AccountId))
                .to_owned(),
        )
        .await?;
        use Leads as L;
        m.create_table(
            Table::create()
                .table(Leads::Table)
                .col(ColumnDef::new(L::TenantId).string().not_null())
                .col(ColumnDef::new(L::LeadId).string().not_null())
                .col(ColumnDef::new(L::AccountId).string().not_null())
                .col(ColumnDef::new(L::Source).string().not_null())
                .col(ColumnDef::new(L::Campaign).string().not_null())
                .col(ColumnDef::new(L::OwnerSdr).string().not_null())
                .col(ColumnDef::new(L::Stage).string().not_null())
                .col(ColumnDef::new(L::ContactId).string().null())
                .col(ColumnDef::new(L::Score).blob().null())
                .col(ColumnDef::new(L::ScoreTotal).integer().null())
                .col(ColumnDef::new(L::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(L::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(L::TenantId).col(L::LeadId))
                .foreign_key(
                    ForeignKey::create()
                        .from(Leads::Table, (L::TenantId, L::AccountId))
                        .to(Accounts::Table, (A::TenantId, A::AccountId)),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_leads_account").table(Leads::Table).col(L::TenantId).col(L::AccountId).to_owned(),
        )
        .await
    }
}

/// Contacts, signals, scorecard versions and stage history.
pub struct M002ContactsSignalsScorecards;

impl MigrationName for M002ContactsSignalsScorecards {
    fn name(&self) -> &str {
        "m20261122_000002_contacts_signals_scorecards"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M002ContactsSignalsScorecards {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use Contacts as C;
        m.create_table(
            Table::create()
                .table(Contacts::Table)
                .col(ColumnDef::new(C::TenantId).string().not_null())
                .col(ColumnDef::new(C::ContactId).string().not_null())
                .col(ColumnDef::new(C::AccountId).string().not_null())
                .col(ColumnDef::new(C::FullName).string().not_null())
                .col(ColumnDef::new(C::Title).string().not_null())
                .col(ColumnDef::new(C::Seniority).string().not_null())
                .col(ColumnDef::new(C::Department).string().not_null())
                .col(ColumnDef::new(C::BuyingRole).string().null())
                .col(ColumnDef::new(C::Email).string().not_null())
                .col(ColumnDef::new(C::EmailStatus).string().not_null())
                .col(ColumnDef::new(C::EmailVerifiedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(C::Phone).string().not_null())
                .col(ColumnDef::new(C::PhoneStatus).string().not_null())
                .col(ColumnDef::new(C::PhoneVerifiedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(C::Version).big_integer().not_null())
                .col(ColumnDef::new(C::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(C::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(C::TenantId).col(C::ContactId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_contacts_account")
                .table(Contacts::Table)
                .col(C::TenantId)
                .col(C::AccountId)
                .to_owned(),
        )
        .await?;

        use Signals as S;
        m.create_table(
            Table::create()
                .table(Signals::Table)
                .col(ColumnDef::new(S::TenantId).string().not_null())
                .col(ColumnDef::new(S::SignalId).string().not_null())
                .col(ColumnDef::new(S::LeadId).string().not_null())
                .col(ColumnDef::new(S::AccountId).string().not_null())
                .col(ColumnDef::new(S::ContactId).string().null())
                .col(ColumnDef::new(S::Kind).string().not_null())
                .col(ColumnDef::new(S::OccurredAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(S::ReceivedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(S::TenantId).col(S::SignalId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_signals_lead")
                .table(Signals::Table)
                .col(S::TenantId)
                .col(S::LeadId)
                .col(S::OccurredAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_signals_account")
                .table(Signals::Table)
                .col(S::TenantId)
                .col(S::AccountId)
                .col(S::OccurredAt)
                .to_owned(),
        )
        .await?;

        use Scorecards as K;
        m.create_table(
            Table::create()
                .table(Scorecards::Table)
                .col(ColumnDef::new(K::TenantId).string().not_null())
                .col(ColumnDef::new(K::Segment).string().not_null())
                .col(ColumnDef::new(K::Version).big_integer().not_null())
                .col(ColumnDef::new(K::Body).blob().not_null())
                .col(ColumnDef::new(K::PublishedBy).string().not_null())
                .col(ColumnDef::new(K::PublishedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(K::TenantId).col(K::Segment).col(K::Version))
                .to_owned(),
        )
        .await?;

        use StageChanges as H;
        m.create_table(
            Table::create()
                .table(StageChanges::Table)
                .col(ColumnDef::new(H::Id).big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new(H::TenantId).string().not_null())
                .col(ColumnDef::new(H::LeadId).string().not_null())
                .col(ColumnDef::new(H::FromStage).string().not_null())
                .col(ColumnDef::new(H::ToStage).string().not_null())
                .col(ColumnDef::new(H::Actor).string().not_null())
                .col(ColumnDef::new(H::ActorRoles).string().not_null())
                .col(ColumnDef::new(H::Reason).string().not_null())
                .col(ColumnDef::new(H::Score).integer().not_null())
                .col(ColumnDef::new(H::ScorecardVersion).big_integer().not_null())
                .col(ColumnDef::new(H::ChangedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_stage_changes_lead")
                .table(StageChanges::Table)
                .col(H::TenantId)
                .col(H::LeadId)
                .col(H::Id)
                .to_owned(),
        )
        .await
    }
}

/// The packed per-lead signal log, filled from the signals already stored.
pub struct M003SignalLog;

impl MigrationName for M003SignalLog {
    fn name(&self) -> &str {
        "m20261123_000003_signal_log"
    }
}

/// The tables as M003 found them: a migration names its own columns and
/// queries, so later changes to the service's entities or use cases never
/// change what it did.
#[derive(DeriveIden)]
enum M003Leads {
    #[sea_orm(iden = "leads")]
    Table,
    TenantId,
    LeadId,
    SignalLog,
}

#[derive(DeriveIden)]
enum M003Signals {
    #[sea_orm(iden = "signals")]
    Table,
    TenantId,
    LeadId,
    Kind,
    OccurredAt,
}

/// Signals a log kept per lead when M003 ran.
const M003_MAX_SIGNALS: u64 = 5000;

#[async_trait::async_trait]
impl MigrationTrait for M003SignalLog {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use chrono::{DateTime, Utc};
        use qualify_domain::scoring::{Signal, SignalType};
        m.alter_table(
            Table::alter()
                .table(M003Leads::Table)
                .add_column(ColumnDef::new(M003Leads::SignalLog).blob().null())
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // Every lead, a page at a time in key order; its newest signals packed into its log.
        let mut after: Option<(String, String)> = None;
        loop {
            let mut page = Query::select();
            page.columns([M003Leads::TenantId, M003Leads::LeadId])
                .from(M003Leads::Table)
                .order_by(M003Leads::TenantId, Order::Asc)
                .order_by(M003Leads::LeadId, Order::Asc)
                .limit(500);
            if let Some((t, l)) = &after {
                page.cond_where(
                    Cond::any().add(Expr::col(M003Leads::TenantId).gt(t.as_str())).add(
                        Cond::all()
                            .add(Expr::col(M003Leads::TenantId).eq(t.as_str()))
                            .add(Expr::col(M003Leads::LeadId).gt(l.as_str())),
                    ),
                );
            }
            let leads = db.query_all(&page).await?;
            let Some(last) = leads.last() else { return Ok(()) };
            after = Some((last.try_get("", "tenant_id")?, last.try_get("", "lead_id")?));
            for row in &leads {
                let (tenant, lead): (String, String) = (row.try_get("", "tenant_id")?, row.try_get("", "lead_id")?);
                let q = Query::select()
                    .columns([M003Signals::Kind, M003Signals::OccurredAt])
                    .from(M003Signals::Table)
                    .and_where(Expr::col(M003Signals::TenantId).eq(tenant.as_str()))
                    .and_where(Expr::col(M003Signals::LeadId).eq(lead.as_str()))
                    .order_by(M003Signals::OccurredAt, Order::Desc)
                    .limit(M003_MAX_SIGNALS)
                    .to_owned();
                let mut signals = Vec::new();
                for s in db.query_all(&q).await? {
                    let kind: String = s.try_get("", "kind")?;
                    let occurred_at: DateTime<Utc> = s.try_get("", "occurred_at")?;
                    if let Some(kind) = SignalType::parse(&kind) {
                        signals.push(Signal { kind, occurred_at });
                    }
                }
                if signals.is_empty() {
                    continue;
                }
                let log = signal_log::encode(&signals, M003_MAX_SIGNALS as usize);
                let update = Query::update()
                    .table(M003Leads::Table)
                    .value(M003Leads::SignalLog, log)
                    .and_where(Expr::col(M003Leads::TenantId).eq(tenant.as_str()))
                    .and_where(Expr::col(M003Leads::LeadId).eq(lead.as_str()))
                    .to_owned();
                db.execute(&update).await?;
            }
        }
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(M003Leads::Table).drop_column(M003Leads::SignalLog).to_owned()).await
    }
}

/// Stored rows hold domain data, not API messages: a scorecard's rules and a
/// lead's last score become versioned JSON documents of the domain types
/// (`scorecards.doc`, `leads.score_doc`) instead of encoded protobuf messages
/// (`scorecards.body`, `leads.score`).
pub struct M004DomainDocuments;

impl MigrationName for M004DomainDocuments {
    fn name(&self) -> &str {
        "m20261203_000004_domain_documents"
    }
}

/// The messages as the rows held them before M004, frozen here: field numbers
/// and types of `qualify.scoring.v1` at the time, enums by number.
mod m004 {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::{Value, json};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Scorecard {
        #[prost(message, repeated, tag = "3")]
        pub fit_rules: Vec<FitRule>,
        #[prost(message, repeated, tag = "4")]
        pub engagement_rules: Vec<EngagementRule>,
        #[prost(int32, tag = "5")]
        pub mql_threshold: i32,
        #[prost(int32, tag = "6")]
        pub pql_threshold: i32,
        #[prost(message, optional, tag = "7")]
        pub grade_bands: Option<GradeBands>,
        #[prost(int32, tag = "8")]
        pub framework: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FitRule {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(int32, tag = "2")]
        pub attribute: i32,
        #[prost(int32, tag = "3")]
        pub points: i32,
        #[prost(oneof = "Predicate", tags = "4, 5, 6")]
        pub predicate: Option<Predicate>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Predicate {
        #[prost(message, tag = "4")]
        OneOf(StringList),
        #[prost(string, tag = "5")]
        Contains(String),
        #[prost(message, tag = "6")]
        Between(Range),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringList {
        #[prost(string, repeated, tag = "1")]
        pub values: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Range {
        #[prost(int64, tag = "1")]
        pub min: i64,
        #[prost(int64, tag = "2")]
        pub max: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EngagementRule {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(int32, tag = "2")]
        pub signal_type: i32,
        #[prost(int32, tag = "3")]
        pub points: i32,
        #[prost(double, tag = "4")]
        pub half_life_days: f64,
        #[prost(int32, tag = "5")]
        pub cap: i32,
        #[prost(int32, tag = "6")]
        pub window_days: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GradeBands {
        #[prost(int32, tag = "1")]
        pub fit_a: i32,
        #[prost(int32, tag = "2")]
        pub fit_b: i32,
        #[prost(int32, tag = "3")]
        pub fit_c: i32,
        #[prost(int32, tag = "4")]
        pub engagement_1: i32,
        #[prost(int32, tag = "5")]
        pub engagement_2: i32,
        #[prost(int32, tag = "6")]
        pub engagement_3: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Score {
        #[prost(int32, tag = "1")]
        pub total: i32,
        #[prost(int32, tag = "2")]
        pub fit: i32,
        #[prost(int32, tag = "3")]
        pub engagement: i32,
        #[prost(int32, tag = "4")]
        pub product: i32,
        #[prost(string, tag = "5")]
        pub grade: String,
        #[prost(int32, tag = "6")]
        pub recommended_stage: i32,
        #[prost(int64, tag = "7")]
        pub scorecard_version: i64,
        #[prost(message, repeated, tag = "8")]
        pub contributions: Vec<Contribution>,
        #[prost(message, optional, tag = "9")]
        pub score_time: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Contribution {
        #[prost(string, tag = "1")]
        pub rule_id: String,
        #[prost(int32, tag = "2")]
        pub kind: i32,
        #[prost(int32, tag = "3")]
        pub points: i32,
        #[prost(int32, tag = "4")]
        pub signal_count: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// Storage names by wire number, as the enums stood.
    const FRAMEWORKS: [&str; 9] = ["", "bant", "meddic", "meddpicc", "champ", "gpctba_ci", "faint", "neat", "anum"];
    const ATTRIBUTES: [&str; 9] =
        ["", "industry", "employee_count", "revenue_band", "region", "title", "seniority", "department", "buying_role"];
    const SIGNALS: [&str; 14] = [
        "",
        "pricing_page_visit",
        "content_download",
        "webinar_attended",
        "demo_request",
        "form_submit",
        "email_reply",
        "meeting_held",
        "trial_signup",
        "product_activation",
        "teammate_invited",
        "paid_feature_used",
        "website_visit",
        "email_unsubscribe",
    ];
    const STAGES: [&str; 11] =
        ["new", "new", "mql", "sal", "sql", "sqo", "pql", "closed_won", "closed_lost", "disqualified", "nurture"];
    const RULE_KINDS: [&str; 3] = ["fit", "fit", "engagement"];

    fn name(names: &[&'static str], n: i32, what: &str) -> Result<&'static str, String> {
        usize::try_from(n)
            .ok()
            .and_then(|i| names.get(i))
            .copied()
            .filter(|s| !s.is_empty())
            .ok_or(format!("{what} {n}"))
    }

    /// A scorecard's document (version 1), from its old message.
    pub fn scorecard_doc(sc: &Scorecard) -> Result<Value, String> {
        let framework = if sc.framework == 0 { None } else { Some(name(&FRAMEWORKS, sc.framework, "framework")?) };
        let mut fit_rules = Vec::new();
        for r in &sc.fit_rules {
            let mut rule =
                json!({ "id": r.id, "attribute": name(&ATTRIBUTES, r.attribute, "attribute")?, "points": r.points });
            match &r.predicate {
                Some(Predicate::OneOf(l)) => rule["one_of"] = json!(l.values),
                Some(Predicate::Contains(s)) => rule["contains"] = json!(s),
                Some(Predicate::Between(b)) => rule["between"] = json!([b.min, b.max]),
                None => return Err(format!("fit rule {:?} without a predicate", r.id)),
            }
            fit_rules.push(rule);
        }
        let mut engagement_rules = Vec::new();
        for r in &sc.engagement_rules {
            engagement_rules.push(json!({
                "id": r.id,
                "signal": name(&SIGNALS, r.signal_type, "signal type")?,
                "points": r.points,
                "half_life_days": r.half_life_days,
                "cap": r.cap,
                "window_days": r.window_days.max(0),
            }));
        }
        let b = sc.grade_bands.clone().unwrap_or_default();
        Ok(json!({
            "v": 1,
            "framework": framework,
            "fit_rules": fit_rules,
            "engagement_rules": engagement_rules,
            "mql_threshold": sc.mql_threshold,
            "pql_threshold": sc.pql_threshold,
            "fit_bands": [b.fit_a, b.fit_b, b.fit_c],
            "engagement_bands": [b.engagement_1, b.engagement_2, b.engagement_3],
        }))
    }

    /// A score's document (version 1), from its old message.
    pub fn score_doc(s: &Score) -> Result<Value, String> {
        let t = s.score_time.clone().unwrap_or_default();
        let at: DateTime<Utc> = Utc.timestamp_opt(t.seconds, t.nanos.max(0) as u32).single().ok_or("score time")?;
        let contributions: Vec<Value> = s
            .contributions
            .iter()
            .map(|c| {
                Ok(json!({
                    "rule_id": c.rule_id,
                    "kind": name(&RULE_KINDS, c.kind, "rule kind")?,
                    "points": c.points,
                    "signals": c.signal_count.max(0),
                }))
            })
            .collect::<Result<_, String>>()?;
        Ok(json!({
            "v": 1,
            "total": s.total,
            "fit": s.fit,
            "engagement": s.engagement,
            "product": s.product,
            "grade": s.grade,
            "recommended": name(&STAGES, s.recommended_stage, "stage")?,
            "scorecard_version": s.scorecard_version,
            "scored_at": at,
            "contributions": contributions,
        }))
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M004DomainDocuments {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use prost::Message;
        let db = m.get_connection();
        let bad = |what: &str, key: String, e: String| DbErr::Migration(format!("{what} {key}: {e}"));

        m.alter_table(
            Table::alter().table(Scorecards::Table).add_column(ColumnDef::new(Doc::Doc).text().null()).to_owned(),
        )
        .await?;
        let rows = db
            .query_all(
                &Query::select()
                    .columns([Scorecards::TenantId, Scorecards::Segment, Scorecards::Version, Scorecards::Body])
                    .from(Scorecards::Table)
                    .to_owned(),
            )
            .await?;
        for row in rows {
            let (tenant, segment, version): (String, String, i64) =
                (row.try_get("", "tenant_id")?, row.try_get("", "segment")?, row.try_get("", "version")?);
            let key = format!("{tenant}/{segment}/v{version}");
            let body: Vec<u8> = row.try_get("", "body")?;
            let old =
                m004::Scorecard::decode(body.as_slice()).map_err(|e| bad("scorecard", key.clone(), e.to_string()))?;
            let doc = m004::scorecard_doc(&old).map_err(|e| bad("scorecard", key, e))?;
            db.execute(
                &Query::update()
                    .table(Scorecards::Table)
                    .value(Doc::Doc, doc.to_string())
                    .and_where(Expr::col(Scorecards::TenantId).eq(tenant))
                    .and_where(Expr::col(Scorecards::Segment).eq(segment))
                    .and_where(Expr::col(Scorecards::Version).eq(version))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(Table::alter().table(Scorecards::Table).drop_column(Scorecards::Body).to_owned()).await?;

        m.alter_table(
            Table::alter().table(Leads::Table).add_column(ColumnDef::new(Doc::ScoreDoc).text().null()).to_owned(),
        )
        .await?;
        // Page by key: a tenant may hold millions of leads.
        let mut after: Option<(String, String)> = None;
        loop {
            let mut page = Query::select();
            page.columns([Leads::TenantId, Leads::LeadId, Leads::Score])
                .from(Leads::Table)
                .and_where(Expr::col(Leads::Score).is_not_null())
                .order_by(Leads::TenantId, Order::Asc)
                .order_by(Leads::LeadId, Order::Asc)
                .limit(1000);
            if let Some((t, l)) = &after {
                page.cond_where(
                    Cond::any().add(Expr::col(Leads::TenantId).gt(t.as_str())).add(
                        Cond::all()
                            .add(Expr::col(Leads::TenantId).eq(t.as_str()))
                            .add(Expr::col(Leads::LeadId).gt(l.as_str())),
                    ),
                );
            }
            let rows = db.query_all(&page).await?;
            let Some(last) = rows.last() else { break };
            after = Some((last.try_get("", "tenant_id")?, last.try_get("", "lead_id")?));
            for row in rows {
                let (tenant, lead): (String, String) = (row.try_get("", "tenant_id")?, row.try_get("", "lead_id")?);
                let body: Vec<u8> = row.try_get("", "score")?;
                let key = format!("{tenant}/{lead}");
                let old = m004::Score::decode(body.as_slice())
                    .map_err(|e| bad("score of lead", key.clone(), e.to_string()))?;
                let doc = m004::score_doc(&old).map_err(|e| bad("score of lead", key, e))?;
                db.execute(
                    &Query::update()
                        .table(Leads::Table)
                        .value(Doc::ScoreDoc, doc.to_string())
                        .and_where(Expr::col(Leads::TenantId).eq(tenant))
                        .and_where(Expr::col(Leads::LeadId).eq(lead))
                        .to_owned(),
                )
                .await?;
            }
        }
        m.alter_table(Table::alter().table(Leads::Table).drop_column(Leads::Score).to_owned()).await
    }
}

/// The columns M004 adds.
#[derive(DeriveIden)]
enum Doc {
    Doc,
    ScoreDoc,
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use qualify_domain::scoring::{Signal, SignalType};
    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

    use super::*;

    /// Migrations applied before M003.
    const BEFORE_M003: u32 = 4;

    async fn exec(db: &DatabaseConnection, sql: &str) {
        db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Leads and signals stored by the schema before M003; after it, each
    /// lead's log holds its signals, newest first, and nothing else changed.
    async fn signal_logs_are_filled_from_the_stored_signals(db: DatabaseConnection) {
        let steps = Migrator::migrations().iter().take_while(|m| m.name() != M003SignalLog.name()).count();
        assert_eq!(steps as u32, BEFORE_M003);
        Migrator::up(&db, Some(BEFORE_M003)).await.unwrap();
        let t0: DateTime<Utc> = "2026-03-01T10:00:00Z".parse().unwrap();
        exec(&db, "INSERT INTO accounts (tenant_id, account_id, display_name, industry, employee_count, revenue_band, region, segment, version, created_at, updated_at) VALUES ('t', 'a', 'A', 'saas', 10, '', '', NULL, 1, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z')").await;
        for (lead, score) in [("l-1", 10), ("l-2", 20)] {
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                match db.get_database_backend() {
                    DbBackend::Postgres => "INSERT INTO leads (tenant_id, lead_id, account_id, source, campaign, owner_sdr, stage, score_total, created_at, updated_at) VALUES ('t', $1, 'a', 'inbound', '', '', 'new', $2, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z')",
                    _ => "INSERT INTO leads (tenant_id, lead_id, account_id, source, campaign, owner_sdr, stage, score_total, created_at, updated_at) VALUES ('t', ?, 'a', 'inbound', '', '', 'new', ?, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z')",
                },
                [lead.into(), score.into()],
            ))
            .await
            .unwrap();
        }
        let kinds = ["website_visit", "email_reply", "demo_request"];
        for (i, kind) in kinds.iter().enumerate() {
            let at = (t0 + Duration::hours(i as i64)).to_rfc3339();
            exec(&db, &format!("INSERT INTO signals (tenant_id, signal_id, lead_id, account_id, kind, occurred_at, received_at) VALUES ('t', 's-{i}', 'l-1', 'a', '{kind}', '{at}', '{at}')")).await;
        }
        Migrator::up(&db, None).await.unwrap();
        let log = |lead: &'static str| {
            let db = db.clone();
            async move {
                let row = db
                    .query_one_raw(Statement::from_string(
                        db.get_database_backend(),
                        format!("SELECT signal_log, score_total FROM leads WHERE lead_id = '{lead}'"),
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                let log: Option<Vec<u8>> = row.try_get("", "signal_log").unwrap();
                let score: Option<i32> = row.try_get("", "score_total").unwrap();
                (log.map(|l| signal_log::decode(&l)), score)
            }
        };
        let want: Vec<Signal> = kinds
            .iter()
            .enumerate()
            .rev()
            .map(|(i, k)| Signal { kind: SignalType::parse(k).unwrap(), occurred_at: t0 + Duration::hours(i as i64) })
            .collect();
        assert_eq!(log("l-1").await, (Some(want), Some(10)));
        assert_eq!(log("l-2").await, (None, Some(20)), "a lead without signals keeps no log");
    }

    #[tokio::test]
    async fn signal_log_migration_on_sqlite() {
        let db = qualify_platform::db::connect_url("sqlite::memory:", None, 1).await.unwrap();
        signal_logs_are_filled_from_the_stored_signals(db).await;
    }

    #[tokio::test]
    async fn signal_log_migration_on_postgres() {
        let url = std::env::var("QUALIFY_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("t_m003_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let db = qualify_platform::db::connect_url(&url, Some(&schema), 2)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required by this test: {e:#}"));
        signal_logs_are_filled_from_the_stored_signals(db.clone()).await;
        db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
    }
}
