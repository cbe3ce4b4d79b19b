//! The `scorecards` table: one row per published version, immutable. The rules
//! are kept as a versioned JSON document of the domain scorecard (`doc`), so
//! the stored form follows the domain, never the API.

use qualify_domain::scoring::{
    Attribute, EngagementRule, FitRule, GradeBands, Predicate, PublishedScorecard, Scorecard, SignalType,
};
use qualify_domain::{Framework, Segment};
use qualify_platform::ApiError;
use qualify_platform::db::is_unique_violation;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};

use super::entity::scorecard;

/// Storage key of a segment's scorecard; the tenant-wide one is "default".
pub fn segment_key(segment: Option<Segment>) -> &'static str {
    segment.map_or("default", Segment::as_str)
}

fn segment_of(key: &str) -> Option<Segment> {
    Segment::parse(key)
}

/// The newest published version of a segment's scorecard.
pub async fn active_version(db: &impl ConnectionTrait, tenant: &str, seg: &str) -> Result<Option<i64>, ApiError> {
    Ok(scorecard::Entity::find()
        .select_only()
        .column(scorecard::Column::Version)
        .filter(scorecard::Column::TenantId.eq(tenant))
        .filter(scorecard::Column::Segment.eq(seg))
        .order_by_desc(scorecard::Column::Version)
        .limit(1)
        .into_tuple::<i64>()
        .one(db)
        .await?)
}

/// One published version, or NOT_FOUND.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &str,
    seg: &str,
    version: i64,
) -> Result<PublishedScorecard, ApiError> {
    let row = scorecard::Entity::find_by_id((tenant.to_string(), seg.to_string(), version))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound { kind: "scorecard version", id: version.to_string() })?;
    from_row(row)
}

/// Versions of a segment's scorecard, newest first, older than `before` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    seg: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<PublishedScorecard>, ApiError> {
    let mut q = scorecard::Entity::find()
        .filter(scorecard::Column::TenantId.eq(tenant))
        .filter(scorecard::Column::Segment.eq(seg));
    if let Some(before) = before {
        q = q.filter(scorecard::Column::Version.lt(before));
    }
    q.order_by_desc(scorecard::Column::Version).limit(limit).all(db).await?.into_iter().map(from_row).collect()
}

/// Stores a new version; a version published concurrently is ABORTED.
pub async fn insert(db: &impl ConnectionTrait, tenant: &str, p: &PublishedScorecard) -> Result<(), ApiError> {
    let seg = segment_key(p.segment);
    scorecard::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        segment: Set(seg.to_string()),
        version: Set(p.version),
        doc: Set(encode(&p.scorecard)),
        published_by: Set(p.published_by.clone()),
        published_at: Set(p.published_at),
    }
    .insert(db)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::Aborted(format!("another version of scorecard {seg} was published concurrently; retry"))
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// The longest finite look-back window, in days, of any version published by
/// any tenant (0 when none has one), read a page of versions at a time.
pub async fn longest_window(db: &impl ConnectionTrait) -> Result<u32, ApiError> {
    use sea_orm::PaginatorTrait;
    let mut pages = scorecard::Entity::find()
        .order_by_asc(scorecard::Column::TenantId)
        .order_by_asc(scorecard::Column::Segment)
        .order_by_asc(scorecard::Column::Version)
        .paginate(db, 200);
    let mut longest = 0;
    while let Some(page) = pages.fetch_and_next().await? {
        for row in page {
            let rules = from_row(row)?.scorecard.engagement_rules;
            longest = rules.iter().map(|r| r.window_days).fold(longest, u32::max);
        }
    }
    Ok(longest)
}

fn from_row(row: scorecard::Model) -> Result<PublishedScorecard, ApiError> {
    Ok(PublishedScorecard {
        segment: segment_of(&row.segment),
        version: row.version,
        scorecard: decode(&row.doc)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("scorecard {} v{}: {e}", row.segment, row.version)))?,
        published_by: row.published_by,
        published_at: row.published_at,
    })
}

/// The stored document of a scorecard, version 1. Names, not positions:
/// enums by their storage names, so a reordered enum never changes a row.
#[derive(Debug, Serialize, Deserialize)]
struct DocV1 {
    v: u32,
    framework: Option<String>,
    fit_rules: Vec<FitDoc>,
    engagement_rules: Vec<EngagementDoc>,
    mql_threshold: i32,
    pql_threshold: i32,
    fit_bands: [i32; 3],
    engagement_bands: [i32; 3],
}

#[derive(Debug, Serialize, Deserialize)]
struct FitDoc {
    id: String,
    attribute: String,
    points: i32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    one_of: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    between: Option<[i64; 2]>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EngagementDoc {
    id: String,
    signal: String,
    points: i32,
    half_life_days: f64,
    cap: i32,
    window_days: u32,
}

/// A published version as one document: what the scorecard cache keeps in Redis.
#[derive(Debug, Serialize, Deserialize)]
struct PublishedDoc {
    segment: String,
    version: i64,
    published_by: String,
    published_at: chrono::DateTime<chrono::Utc>,
    doc: DocV1,
}

/// The cache form of a published version.
pub fn encode_published(p: &PublishedScorecard) -> Vec<u8> {
    let doc = PublishedDoc {
        segment: segment_key(p.segment).to_string(),
        version: p.version,
        published_by: p.published_by.clone(),
        published_at: p.published_at,
        doc: to_doc(&p.scorecard),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Reads the cache form of a published version.
pub fn decode_published(bytes: &[u8]) -> anyhow::Result<PublishedScorecard> {
    let d: PublishedDoc = serde_json::from_slice(bytes)?;
    Ok(PublishedScorecard {
        segment: segment_of(&d.segment),
        version: d.version,
        scorecard: from_doc(d.doc)?,
        published_by: d.published_by,
        published_at: d.published_at,
    })
}

/// The document form of a scorecard, as the `doc` column holds it.
pub fn encode(c: &Scorecard) -> String {
    serde_json::to_string(&to_doc(c)).unwrap_or_default()
}

/// Reads a stored document.
pub fn decode(doc: &str) -> anyhow::Result<Scorecard> {
    from_doc(serde_json::from_str(doc)?)
}

fn to_doc(c: &Scorecard) -> DocV1 {
    DocV1 {
        v: 1,
        framework: c.framework.map(|f| f.as_str().to_string()),
        fit_rules: c
            .fit_rules
            .iter()
            .map(|r| {
                let mut d = FitDoc {
                    id: r.id.clone(),
                    attribute: r.attribute.as_str().to_string(),
                    points: r.points,
                    one_of: None,
                    contains: None,
                    between: None,
                };
                match &r.predicate {
                    Predicate::OneOf(v) => d.one_of = Some(v.clone()),
                    Predicate::Contains(s) => d.contains = Some(s.clone()),
                    Predicate::Between { min, max } => d.between = Some([*min, *max]),
                }
                d
            })
            .collect(),
        engagement_rules: c
            .engagement_rules
            .iter()
            .map(|r| EngagementDoc {
                id: r.id.clone(),
                signal: r.signal.as_str().to_string(),
                points: r.points,
                half_life_days: r.half_life_days,
                cap: r.cap,
                window_days: r.window_days,
            })
            .collect(),
        mql_threshold: c.mql_threshold,
        pql_threshold: c.pql_threshold,
        fit_bands: c.bands.fit,
        engagement_bands: c.bands.engagement,
    }
}

fn from_doc(d: DocV1) -> anyhow::Result<Scorecard> {
    anyhow::ensure!(d.v == 1, "unknown scorecard document version {}", d.v);
    let framework = match &d.framework {
        Some(f) => Some(Framework::parse(f).ok_or_else(|| anyhow::anyhow!("unknown framework {f:?}"))?),
        None => None,
    };
    let fit_rules = d
        .fit_rules
        .into_iter()
        .map(|r| {
            let attribute =
                Attribute::parse(&r.attribute).ok_or_else(|| anyhow::anyhow!("unknown attribute {:?}", r.attribute))?;
            let predicate = match (r.one_of, r.contains, r.between) {
                (Some(v), None, None) => Predicate::OneOf(v),
                (None, Some(s), None) => Predicate::Contains(s),
                (None, None, Some([min, max])) => Predicate::Between { min, max },
                _ => anyhow::bail!("fit rule {:?} needs exactly one predicate", r.id),
            };
            Ok(FitRule { id: r.id, attribute, predicate, points: r.points })
        })
        .collect::<anyhow::Result<_>>()?;
    let engagement_rules = d
        .engagement_rules
        .into_iter()
        .map(|r| {
            let signal =
                SignalType::parse(&r.signal).ok_or_else(|| anyhow::anyhow!("unknown signal type {:?}", r.signal))?;
            Ok(EngagementRule {
                id: r.id,
                signal,
                points: r.points,
                half_life_days: r.half_life_days,
                cap: r.cap,
                window_days: r.window_days,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Scorecard {
        fit_rules,
        engagement_rules,
        mql_threshold: d.mql_threshold,
        pql_threshold: d.pql_threshold,
        bands: GradeBands { fit: d.fit_bands, engagement: d.engagement_bands },
        framework,
    })
}
