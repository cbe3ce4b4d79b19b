//! Scorecard publishing and reading. Versions are immutable and linear: the
//! primary key (tenant, segment, version) makes concurrent publishes of the
//! same next version collide, and exactly one wins.

use prost::Message;
use qualify_domain::{Caller, Segment, permission};
use qualify_platform::{ApiError, Violations, idempotency, page};
use qualify_proto::convert::timestamp;
use qualify_proto::scoring as pb;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::ScoringApi;
use crate::cards::Cards;
use crate::scorecard::{decode, segment_key};
use crate::store::entity::scorecard;
use qualify_platform::db::is_unique_violation;

impl ScoringApi {
    pub(crate) async fn publish_scorecard(
        &self,
        caller: Caller,
        req: pb::PublishScorecardRequest,
    ) -> Result<pb::PublishScorecardResponse, ApiError> {
        permission::administer(&caller, "publish a scorecard")?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        let Some(sc) = req.scorecard.clone() else { return Err(ApiError::field("scorecard", "is required")) };
        let decoded = decode(&mut v, &sc);
        v.finish()?;
        let (segment, _) = decoded.ok_or_else(|| ApiError::field("scorecard", "is invalid"))?;
        let seg = segment_key(segment);
        let key = idempotency::Key { tenant: &caller.tenant, method: "PublishScorecard", request_id: &req.request_id };
        let (tenant, subject, expected) = (caller.tenant.clone(), caller.subject.clone(), req.expected_version);
        let now = self.clock.now();
        let published = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let current = Cards::db_active(txn, &tenant, seg).await?.unwrap_or(0);
                if expected != 0 && expected != current {
                    return Err(ApiError::Aborted(format!(
                        "scorecard {seg} is at version {current}, not {expected}; read it again"
                    )));
                }
                let mut body = sc;
                body.version = current + 1;
                body.publish_time = Some(timestamp(now));
                body.published_by = subject.clone();
                scorecard::ActiveModel {
                    tenant_id: Set(tenant.clone()),
                    segment: Set(seg.to_string()),
                    version: Set(body.version),
                    body: Set(body.encode_to_vec()),
                    published_by: Set(subject),
                    published_at: Set(now),
                }
                .insert(txn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        ApiError::Aborted(format!(
                            "another version of scorecard {seg} was published concurrently; retry"
                        ))
                    } else {
                        e.into()
                    }
                })?;
                Ok(pb::PublishScorecardResponse { scorecard: Some(body) })
            })
        })
        .await?;
        if let Some(sc) = &published.scorecard {
            self.cards.published(&caller.tenant, seg, sc.version, sc.encode_to_vec()).await;
            tracing::info!(tenant = %caller.tenant, segment = seg, version = sc.version, "scorecard published");
        }
        Ok(published)
    }

    pub(crate) async fn get_scorecard(
        &self,
        caller: Caller,
        req: pb::GetScorecardRequest,
    ) -> Result<pb::GetScorecardResponse, ApiError> {
        let mut v = Violations::new();
        let segment = v.optional_enum::<Segment>("segment", req.segment);
        v.check(req.version >= 0, "version", "must not be negative");
        v.finish()?;
        let seg = segment_key(segment);
        let version = match req.version {
            0 => self
                .cards
                .active_version(&self.db, &caller.tenant, seg)
                .await?
                .ok_or(ApiError::NotFound { kind: "scorecard", id: seg.to_string() })?,
            v => v,
        };
        let card = self.cards.get(&self.db, &caller.tenant, seg, version).await?;
        Ok(pb::GetScorecardResponse { scorecard: Some(card.wire.clone()) })
    }

    pub(crate) async fn list_scorecards(
        &self,
        caller: Caller,
        req: pb::ListScorecardsRequest,
    ) -> Result<pb::ListScorecardsResponse, ApiError> {
        let mut v = Violations::new();
        let segment = v.optional_enum::<Segment>("segment", req.segment);
        v.finish()?;
        let seg = segment_key(segment);
        let query = format!("scorecards|{}|{seg}", caller.tenant);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let mut q = scorecard::Entity::find()
            .filter(scorecard::Column::TenantId.eq(&caller.tenant))
            .filter(scorecard::Column::Segment.eq(seg));
        if let Some(after) = &p.after {
            let after: i64 =
                after.parse().map_err(|_| ApiError::field("page_token", "is not a token from this query"))?;
            q = q.filter(scorecard::Column::Version.lt(after));
        }
        let mut rows = q.order_by_desc(scorecard::Column::Version).limit(p.size + 1).all(&self.db).await?;
        let fetched = rows.len();
        rows.truncate(p.size as usize);
        let last = rows.last().map(|r| r.version.to_string());
        let next_page_token = page::next_token(&query, last.as_deref(), fetched, p.size);
        let scorecards = rows
            .into_iter()
            .map(|r| pb::Scorecard::decode(r.body.as_slice()).map_err(|e| ApiError::Internal(e.into())))
            .collect::<Result<_, _>>()?;
        Ok(pb::ListScorecardsResponse { scorecards, next_page_token })
    }
}
