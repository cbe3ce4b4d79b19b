//! The codec of the metrics API: requests decoded into the use cases' types,
//! every bad field collected as a violation before anything runs, and their
//! results encoded as messages.

use qualify_domain::currency::{Rate, is_code as is_currency};
use qualify_domain::{LeadSource, Segment};
use qualify_platform::validate::{Item, is_month, month_range};
use qualify_platform::{ApiError, Violations};
use qualify_proto::common::Money;
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::metrics::{self as pb, FunnelDimension, QuotaOwnerKind};

use crate::funnel::{self, Dimension, Filters, Group};
use crate::health::{Finding, FindingCode};
use crate::ingest::Position;
use crate::quotas::{OwnerKind, Quota, QuotaChange};

/// The funnel query of `tenant` that `req` asks for.
pub(super) fn funnel_query(tenant: String, req: pb::GetFunnelRequest) -> Result<funnel::Query, ApiError> {
    let mut v = Violations::new();
    month_range(&mut v, &req.start_period, &req.end_period);
    let mut group_by = Vec::new();
    for (i, d) in req.group_by.iter().enumerate() {
        match FunnelDimension::try_from(*d).ok().and_then(dimension) {
            None => v.add(format!("group_by[{i}]"), "must be a known dimension"),
            Some(d) if group_by.contains(&d) => v.add(format!("group_by[{i}]"), "is repeated"),
            Some(d) => group_by.push(d),
        }
    }
    let mut filters = Filters::default();
    if req.source != 0 {
        filters.source = LeadSource::from_wire(req.source);
        v.check(filters.source.is_some(), "source", "is not a known value");
    }
    if req.segment != 0 {
        filters.segment = Segment::from_wire(req.segment);
        v.check(filters.segment.is_some(), "segment", "is not a known value");
    }
    for (field, filter, value) in [
        ("team", &mut filters.team, &req.team),
        ("rep", &mut filters.rep, &req.rep),
        ("campaign", &mut filters.campaign, &req.campaign),
    ] {
        if !value.is_empty() {
            v.text(field, value, 256);
            *filter = Some(value.clone());
        }
    }
    let fine = [Dimension::Team, Dimension::Rep, Dimension::Campaign];
    let asked = fine.iter().filter(|d| group_by.contains(d)).count()
        + [&req.team, &req.rep, &req.campaign].iter().filter(|v| !v.is_empty()).count();
    v.check(asked <= 1, "group_by", "may group or filter by at most one of team, rep and campaign");
    v.finish()?;
    Ok(funnel::Query { tenant, start: req.start_period, end: req.end_period, group_by, filters })
}

fn dimension(d: FunnelDimension) -> Option<Dimension> {
    Some(match d {
        FunnelDimension::Period => Dimension::Period,
        FunnelDimension::Source => Dimension::Source,
        FunnelDimension::Segment => Dimension::Segment,
        FunnelDimension::Team => Dimension::Team,
        FunnelDimension::Rep => Dimension::Rep,
        FunnelDimension::Campaign => Dimension::Campaign,
        FunnelDimension::Unspecified => return None,
    })
}

/// Checks a range of months, `start..=end`.
pub(super) fn months(start: &str, end: &str) -> Result<(), ApiError> {
    let mut v = Violations::new();
    month_range(&mut v, start, end);
    v.finish()
}

/// Checks a month, `YYYY-MM`, given in `field`.
pub(super) fn month(field: &str, period: &str) -> Result<(), ApiError> {
    let mut v = Violations::new();
    v.check(is_month(period), field, "must be a month as YYYY-MM");
    v.finish()
}

fn group(g: Group) -> pb::FunnelGroup {
    pb::FunnelGroup {
        period: g.period,
        source: g.source.map_or(0, WireEnum::to_wire),
        segment: g.segment.map_or(0, WireEnum::to_wire),
        team: g.team,
        rep: g.rep,
        campaign: g.campaign,
    }
}

/// A funnel row as sent.
#[allow(deprecated)] // the deprecated whole-day fields are still filled for old clients
pub(super) fn funnel_row(r: funnel::Row) -> pb::FunnelRow {
    let f = r.figures;
    pb::FunnelRow {
        group: Some(group(r.group)),
        figures: Some(pb::FunnelFigures {
            leads: f.leads,
            mqls: f.mqls,
            sqls: f.sqls,
            sqos_submitted: f.sqos_submitted,
            sqos_accepted: f.sqos_accepted,
            sqos_rejected: f.sqos_rejected,
            overrides: f.overrides,
            won: f.won,
            lost: f.lost,
            pipeline_generated_minor: f.pipeline_generated_minor,
            won_amount_minor: f.won_amount_minor,
            open_pipeline_minor: f.open_pipeline_minor,
            mql_to_sql: f.mql_to_sql,
            sql_to_sqo: f.sql_to_sqo,
            sqo_to_won: f.sqo_to_won,
            sql_to_won: f.sql_to_won,
            win_rate: f.win_rate,
            average_deal_size_minor: f.average_deal_size_minor,
            velocity_days: f.velocity_days,
            forecast_minor: f.forecast_minor,
            accepted_without_activity: f.accepted_without_activity,
            // The deprecated whole-day fields: the same figures, rounded down.
            followthrough_median_days: f.followthrough_median_days.map(|d| d.floor() as i64),
            followthrough_p90_days: f.followthrough_p90_days.map(|d| d.floor() as i64),
            followthrough_days_median: f.followthrough_median_days,
            followthrough_days_p90: f.followthrough_p90_days,
            meaningful_within_30_days: f.meaningful_within_30_days,
            rejection_reasons: f.rejection_reasons.into_iter().collect(),
            accepted_with_stale_contacts: f.accepted_with_stale_contacts,
            quota_minor: f.quota_minor,
            coverage: f.coverage,
            calibration_reviewed: f.calibration_reviewed,
            calibration_agreed: f.calibration_agreed,
            calibration_agreement: f.calibration_agreement,
            currency_code: f.currency_code,
            missing_exchange_rates: f
                .missing_rates
                .into_iter()
                .map(|(currency_code, period)| pb::MissingExchangeRate { currency_code, period })
                .collect(),
            expansions_submitted: f.expansions_submitted,
            expansions_accepted: f.expansions_accepted,
            expansion_pipeline_minor: f.expansion_pipeline_minor,
            expansions_won: f.expansions_won,
            leads_verified: f.leads_verified,
            leads_bounced: f.leads_bounced,
            verified_share: f.verified_share,
            bounce_rate: f.bounce_rate,
        }),
    }
}

/// A health finding as sent; one about the whole range has an empty group.
pub(super) fn finding(f: Finding) -> pb::Finding {
    let code = match f.code {
        FindingCode::LooseCriteria => pb::FindingCode::LooseCriteria,
        FindingCode::TightenCriteria => pb::FindingCode::TightenCriteria,
        FindingCode::LowCoverage => pb::FindingCode::LowCoverage,
        FindingCode::StageInflation => pb::FindingCode::StageInflation,
        FindingCode::OverridesRising => pb::FindingCode::OverridesRising,
        FindingCode::StaleContactData => pb::FindingCode::StaleContactData,
        FindingCode::SdrOffTarget => pb::FindingCode::SdrOffTarget,
        FindingCode::TooStrict => pb::FindingCode::TooStrict,
        FindingCode::MissingExchangeRate => pb::FindingCode::MissingExchangeRate,
    };
    pb::Finding {
        code: code as i32,
        group: Some(f.group.map(group).unwrap_or_default()),
        message: f.message,
        evidence: f
            .evidence
            .into_iter()
            .map(|e| pb::Evidence { name: e.name, value: e.value, benchmark: e.benchmark })
            .collect(),
    }
}

/// A stream's position as sent.
pub(super) fn position(p: Position) -> pb::StreamPosition {
    pb::StreamPosition { stream: p.stream, applied_sequence: p.applied_sequence, applied_events: p.applied_events }
}

/// The reporting currency `req` sets.
pub(super) fn reporting_currency(req: &pb::SetReportingCurrencyRequest) -> Result<String, ApiError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.check(is_currency(&req.currency_code), "currency_code", "must be an ISO 4217 code");
    v.finish()?;
    Ok(req.currency_code.clone())
}

/// Most rates one SetExchangeRates may carry.
const MAX_RATES: usize = 200;

/// The month and the rates `req` sets, checked against the reporting currency they convert into.
pub(super) fn exchange_rates(
    req: &pb::SetExchangeRatesRequest,
    reporting: &str,
) -> Result<Vec<(String, Rate)>, ApiError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.check(is_month(&req.period), "period", "must be a month as YYYY-MM");
    v.check(!req.rates.is_empty(), "rates", "must not be empty");
    v.check(req.rates.len() <= MAX_RATES, "rates", "must hold at most 200 rates");
    let mut out = Vec::with_capacity(req.rates.len());
    for (i, r) in req.rates.iter().enumerate().take(MAX_RATES) {
        let code_ok = is_currency(&r.currency_code);
        v.check(code_ok, Item("rates", i, "currency_code"), "must be an ISO 4217 code");
        v.check(
            r.currency_code != reporting,
            Item("rates", i, "currency_code"),
            "is the reporting currency: it needs no rate",
        );
        v.check(
            !req.rates[..i].iter().any(|o| o.currency_code == r.currency_code),
            Item("rates", i, "currency_code"),
            "is given twice",
        );
        let rate = Rate::parse(&r.rate);
        v.check(rate.is_some(), Item("rates", i, "rate"), "must be a plain decimal above 0, at most nine places");
        if let Some(rate) = rate {
            out.push((r.currency_code.clone(), rate));
        }
    }
    v.finish()?;
    Ok(out)
}

/// Rates as sent.
pub(super) fn rates_of(rates: Vec<(String, Rate)>) -> Vec<pb::ExchangeRate> {
    rates.into_iter().map(|(currency_code, r)| pb::ExchangeRate { currency_code, rate: r.to_string() }).collect()
}

/// The quota `req` sets.
pub(super) fn quota_change(req: &pb::UpdateQuotaRequest) -> Result<QuotaChange, ApiError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    let Some(q) = req.quota.as_ref() else {
        return Err(ApiError::field("quota", "is required"));
    };
    let kind = match QuotaOwnerKind::try_from(q.owner_kind) {
        Ok(QuotaOwnerKind::Team) => Some(OwnerKind::Team),
        Ok(QuotaOwnerKind::Rep) => Some(OwnerKind::Rep),
        Ok(QuotaOwnerKind::Unspecified) | Err(_) => None,
    };
    v.check(kind.is_some(), "quota.owner_kind", "must be TEAM or REP");
    v.id("quota.owner_id", &q.owner_id);
    v.check(is_month(&q.period), "quota.period", "must be a month as YYYY-MM");
    match &q.amount {
        None => v.add("quota.amount", "is required"),
        Some(m) => {
            v.check(m.amount_minor >= 0, "quota.amount.amount_minor", "must not be negative");
            v.check(is_currency(&m.currency_code), "quota.amount.currency_code", "must be an ISO 4217 code");
        }
    }
    v.finish()?;
    let (Some(owner_kind), Some(amount)) = (kind, q.amount.clone()) else {
        return Err(ApiError::field("quota", "is invalid"));
    };
    Ok(QuotaChange {
        owner_kind,
        owner_id: q.owner_id.clone(),
        period: q.period.clone(),
        amount_minor: amount.amount_minor,
        currency_code: amount.currency_code,
    })
}

/// A quota as sent.
pub(super) fn quota(q: Quota) -> pb::Quota {
    let kind = match q.owner_kind {
        OwnerKind::Team => QuotaOwnerKind::Team,
        OwnerKind::Rep => QuotaOwnerKind::Rep,
    };
    pb::Quota {
        owner_kind: kind as i32,
        owner_id: q.owner_id,
        period: q.period,
        amount: Some(Money { amount_minor: q.amount_minor, currency_code: q.currency_code }),
        update_time: Some(timestamp(q.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_currencies() {
        assert!(is_month("2026-11"));
        assert!(!is_month("2026-13") && !is_month("2026-1") && !is_month("26-11-01"));
        assert!(is_currency("USD") && !is_currency("usd") && !is_currency("US"));
        let req = |code: &str, rate: &str| pb::SetExchangeRatesRequest {
            period: "2026-11".into(),
            rates: vec![pb::ExchangeRate { currency_code: code.into(), rate: rate.into() }],
            request_id: String::new(),
        };
        assert_eq!(exchange_rates(&req("EUR", "1.08"), "USD").unwrap()[0].1.to_string(), "1.08");
        for (code, rate, field) in [("USD", "1", "rates[0].currency_code"), ("EUR", "0", "rates[0].rate")] {
            let e = exchange_rates(&req(code, rate), "USD").unwrap_err();
            assert!(format!("{e:?}").contains(field), "{e:?}");
        }
    }
}
