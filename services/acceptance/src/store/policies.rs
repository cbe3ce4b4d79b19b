//! The `gate_policy_versions` table: every policy published per tenant and
//! segment, in columns; the highest version is in force.

use chrono::{DateTime, Utc};
use qualify_domain::{Criterion, Framework, GatePolicy, PolicyInForce, Segment};
use qualify_platform::ApiError;
use qualify_platform::db::is_unique_violation;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entity::gate_policy;

/// The policy in force for a segment: the latest version, or the segment's default (version 0).
pub async fn in_force(db: &impl ConnectionTrait, tenant: &str, segment: Segment) -> Result<PolicyInForce, ApiError> {
    let latest = gate_policy::Entity::find()
        .filter(gate_policy::Column::TenantId.eq(tenant))
        .filter(gate_policy::Column::Segment.eq(segment.as_str()))
        .order_by_desc(gate_policy::Column::Version)
        .one(db)
        .await?;
    match latest {
        Some(m) => from_row(m),
        None => Ok(PolicyInForce::default_for(segment)),
    }
}

/// Version `version` of the segment's policy, as published; `None` when there is no such version.
pub async fn version(
    db: &impl ConnectionTrait,
    tenant: &str,
    segment: Segment,
    version: i64,
) -> Result<Option<PolicyInForce>, ApiError> {
    let key = (tenant.to_string(), segment.as_str().to_string(), version);
    gate_policy::Entity::find_by_id(key).one(db).await?.map(from_row).transpose()
}

/// Publishes `p` as version `version` of the segment's policy, set by
/// `updated_by` at `updated_at`. Versions are never overwritten: a concurrent
/// publication of the same version is ABORTED.
pub async fn put(
    db: &impl ConnectionTrait,
    tenant: &str,
    segment: Segment,
    p: &GatePolicy,
    version: i64,
    updated_at: DateTime<Utc>,
    updated_by: &str,
) -> Result<(), ApiError> {
    let row = gate_policy::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        segment: Set(segment.as_str().to_string()),
        framework: Set(p.framework.as_str().to_string()),
        required_criteria: Set(p.required_criteria.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")),
        require_economic_buyer: Set(p.require_economic_buyer),
        require_champion: Set(p.require_champion),
        min_stakeholders: Set(p.min_stakeholders as i32),
        require_next_step: Set(p.require_next_step),
        contact_max_age_days: Set(p.contact_max_age_days as i32),
        min_score: Set(p.min_score),
        version: Set(version),
        updated_at: Set(updated_at),
        updated_by: Set(updated_by.to_string()),
    };
    gate_policy::Entity::insert(row).exec_without_returning(db).await.map_err(|e| match is_unique_violation(&e) {
        true => ApiError::Aborted(format!("the {} policy changed concurrently; read it again", segment.as_str())),
        false => e.into(),
    })?;
    Ok(())
}

fn from_row(m: gate_policy::Model) -> Result<PolicyInForce, ApiError> {
    let corrupt = || ApiError::Internal(anyhow::anyhow!("unreadable gate policy row for segment {}", m.segment));
    let framework = Framework::parse(&m.framework).ok_or_else(corrupt)?;
    let required_criteria = m
        .required_criteria
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Criterion::parse(s).ok_or_else(corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PolicyInForce {
        policy: GatePolicy {
            framework,
            required_criteria,
            require_economic_buyer: m.require_economic_buyer,
            require_champion: m.require_champion,
            min_stakeholders: m.min_stakeholders.max(0) as u32,
            require_next_step: m.require_next_step,
            contact_max_age_days: m.contact_max_age_days.max(0) as u32,
            min_score: m.min_score,
        },
        version: m.version,
        updated_at: Some(m.updated_at),
    })
}
