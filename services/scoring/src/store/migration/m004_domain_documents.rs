//! M004: stored rows hold domain documents.

use sea_orm_migration::prelude::*;

use super::frozen::{Leads, Scorecards};

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
