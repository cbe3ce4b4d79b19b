//! How one event changes the facts and the roll-ups: pure, no I/O. Each
//! figure is counted once, when the fact it depends on first becomes true,
//! in whichever order the two streams bring the facts.

use qualify_domain::{GateCheckCode, LeadStage, OpportunityState};

use super::event::{
    CalibrationReview, Change, ContactVerified, Decision, Event, LeadCreated, LeadStageChanged, OpportunityChanged,
    Verdict,
};
use super::facts::{Facts, LeadFact, OpportunityFact, Reach};
use crate::rollup::{Deltas, figure, period};

/// Applies `e` to `facts`, adding what it counts to `d`.
pub(crate) fn apply(facts: &mut Facts, e: &Event, d: &mut Deltas) {
    let tenant = e.tenant.as_str();
    match &e.change {
        Some(Change::LeadCreated(c)) => lead_created(facts, tenant, c, d),
        Some(Change::LeadStageChanged(ch)) => lead_stage_changed(facts, tenant, ch, d),
        Some(Change::OpportunityChanged(o)) => opportunity_changed(facts, tenant, o, d),
        Some(Change::DecisionRecorded(dec)) => decision(facts, tenant, dec, d),
        Some(Change::CalibrationReviewed(r)) => review(facts, tenant, r, d),
        Some(Change::ContactVerified(v)) => contact_verified(facts, tenant, v, d),
        None => {}
    }
}

/// The SQL cohort's later milestones count once both the lead's SQL move and
/// the opportunity's milestone are known, in whichever order the streams bring them.
fn credit_sql_cohort(l: &LeadFact, d: &mut Deltas, sqo: bool, won: bool) {
    if let (true, Some(p)) = (l.known, &l.sql_period) {
        let s = l.slice();
        d.add(&l.tenant_id, p, &s, figure::COHORT_SQL_SQO, i64::from(sqo));
        d.add(&l.tenant_id, p, &s, figure::COHORT_SQL_WON, i64::from(won));
    }
}

fn lead_created(facts: &mut Facts, tenant: &str, c: &LeadCreated, d: &mut Deltas) {
    let f = facts.lead(tenant, &c.lead_id);
    if f.known {
        return;
    }
    let p = period(c.created_at);
    f.known = true;
    f.source = c.source.map(|s| s.as_str().to_string()).unwrap_or_default();
    f.segment = c.segment.map(|s| s.as_str().to_string()).unwrap_or_default();
    f.rep = c.sdr.clone();
    f.campaign = c.campaign.clone();
    d.add(tenant, &p, &f.slice(), figure::LEADS, 1);
    f.created_period = Some(p);
    f.contact_id = c.contact_id.clone();
    if !c.contact_id.is_empty() {
        let contact = facts.contact(tenant, &c.contact_id);
        contact.leads.push(c.lead_id.clone());
        let reach = contact.reach();
        recount_reach(facts.lead(tenant, &c.lead_id), reach, d);
    }
    let f = facts.lead(tenant, &c.lead_id);
    // Milestones of the other stream that arrived before the lead's creation.
    credit_sql_cohort(f, d, f.reached_sqo, f.reached_won);
}

fn lead_stage_changed(facts: &mut Facts, tenant: &str, ch: &LeadStageChanged, d: &mut Deltas) {
    let f = facts.lead(tenant, &ch.lead_id);
    let p = period(ch.changed_at);
    let s = f.slice();
    match ch.to {
        Some(LeadStage::Mql | LeadStage::Pql) if f.mql_period.is_none() => {
            d.add(tenant, &p, &s, figure::MQLS, 1);
            f.mql_period = Some(p);
        }
        Some(LeadStage::Sql) if f.sql_period.is_none() => {
            d.add(tenant, &p, &s, figure::SQLS, 1);
            if let Some(m) = &f.mql_period {
                d.add(tenant, m, &s, figure::COHORT_MQL_SQL, 1);
            }
            f.sql_period = Some(p);
            credit_sql_cohort(f, d, f.reached_sqo, f.reached_won);
        }
        _ => {}
    }
}

fn opportunity_changed(facts: &mut Facts, tenant: &str, o: &OpportunityChanged, d: &mut Deltas) {
    if facts.opportunity(tenant, &o.opportunity_id).is_none() {
        let f = OpportunityFact {
            tenant_id: tenant.to_string(),
            opportunity_id: o.opportunity_id.clone(),
            lead_id: o.lead_id.clone(),
            source: o.source.map(|s| s.as_str().to_string()).unwrap_or_default(),
            segment: o.segment.map(|s| s.as_str().to_string()).unwrap_or_default(),
            team: o.team.clone(),
            rep: o.submitted_by.clone(),
            campaign: o.campaign.clone(),
            amount_minor: o.amount_minor,
            currency_code: o.currency_code.clone(),
            expansion: o.expansion,
            accept_period: None,
            accepted_at: None,
            meaningful_activity: false,
            closed: false,
        };
        let submitted = if f.expansion { figure::EXPANSIONS_SUBMITTED } else { figure::SUBMITTED };
        d.add(tenant, &period(o.created_at), &f.slice(), submitted, 1);
        facts.put_opportunity(f);
    }
    let Some(mut f) = facts.opportunity(tenant, &o.opportunity_id).cloned() else { return };
    if f.expansion {
        return expansion_changed(facts, f, o, d);
    }
    let s = f.slice();
    let entered = |x: OpportunityState| o.state == Some(x) && o.from_state != Some(x);
    let mut changed = false;
    if entered(OpportunityState::Rejected) {
        d.add(tenant, &period(o.updated_at), &s, figure::REJECTED, 1);
    }
    if let (None, Some(accepted)) = (&f.accept_period, o.accepted_at) {
        let p = period(accepted);
        d.add(tenant, &p, &s, figure::ACCEPTED, 1);
        d.add(tenant, &p, &s, figure::money(figure::PIPELINE, &f.currency_code), f.amount_minor);
        d.add(tenant, &p, &s, figure::money(figure::OPEN, &f.currency_code), f.amount_minor);
        d.add(tenant, &p, &s, figure::OVERRIDES, i64::from(o.overridden));
        d.add(tenant, &p, &s, figure::NO_ACTIVITY, 1);
        f.accept_period = Some(p);
        f.accepted_at = Some(accepted);
        changed = true;
        let l = facts.lead(tenant, &f.lead_id);
        if !l.reached_sqo {
            l.reached_sqo = true;
            credit_sql_cohort(l, d, true, false);
        }
    }
    if let Some(p) = f.accept_period.clone() {
        if !f.meaningful_activity
            && let Some(first) = o.first_meaningful_activity_at
        {
            let days = f.accepted_at.map_or(0, |a| (first - a).num_days().clamp(0, figure::FOLLOWTHROUGH_MAX_DAYS));
            d.add(tenant, &p, &s, format!("{}{days:02}", figure::FOLLOWTHROUGH_DAY), 1);
            d.add(tenant, &p, &s, figure::WITHIN_30, i64::from(days < 30));
            d.add(tenant, &p, &s, figure::NO_ACTIVITY, -1);
            f.meaningful_activity = true;
            changed = true;
        }
        let won = entered(OpportunityState::ClosedWon);
        if !f.closed && (won || entered(OpportunityState::ClosedLost)) {
            let cp = period(o.closed_at);
            d.add(tenant, &cp, &s, if won { figure::WON } else { figure::LOST }, 1);
            if won {
                let amount = o.closed_amount_minor.unwrap_or(f.amount_minor);
                d.add(tenant, &cp, &s, figure::money(figure::WON_AMOUNT, &f.currency_code), amount);
                d.add(tenant, &p, &s, figure::COHORT_SQO_WON, 1);
            }
            if let Some(a) = f.accepted_at {
                d.add(tenant, &cp, &s, figure::VELOCITY_SECS, (o.closed_at - a).num_seconds().max(0));
                d.add(tenant, &cp, &s, figure::CLOSED_ACCEPTED, 1);
            }
            d.add(tenant, &p, &s, figure::money(figure::OPEN, &f.currency_code), -f.amount_minor);
            f.closed = true;
            changed = true;
            if won {
                let l = facts.lead(tenant, &f.lead_id);
                if !l.reached_won {
                    l.reached_won = true;
                    credit_sql_cohort(l, d, false, true);
                }
            }
        }
    }
    if changed {
        facts.put_opportunity(f);
    }
}

/// An expansion counts apart: when it is accepted (and its value) and when it is won.
fn expansion_changed(facts: &mut Facts, mut f: OpportunityFact, o: &OpportunityChanged, d: &mut Deltas) {
    let (tenant, s) = (f.tenant_id.clone(), f.slice());
    let mut changed = false;
    if let (None, Some(accepted)) = (&f.accept_period, o.accepted_at) {
        let p = period(accepted);
        d.add(&tenant, &p, &s, figure::EXPANSIONS_ACCEPTED, 1);
        d.add(&tenant, &p, &s, figure::money(figure::EXPANSION_PIPELINE, &f.currency_code), f.amount_minor);
        (f.accept_period, f.accepted_at, changed) = (Some(p), Some(accepted), true);
    }
    let won = o.state == Some(OpportunityState::ClosedWon) && o.from_state != Some(OpportunityState::ClosedWon);
    let lost = o.state == Some(OpportunityState::ClosedLost) && o.from_state != Some(OpportunityState::ClosedLost);
    if !f.closed && (won || lost) {
        d.add(&tenant, &period(o.closed_at), &s, figure::EXPANSIONS_WON, i64::from(won));
        (f.closed, changed) = (true, true);
    }
    if changed {
        facts.put_opportunity(f);
    }
}

/// Counts a created lead by its contact's `reach` (once), moving it from what it was counted as.
fn recount_reach(l: &mut LeadFact, reach: Reach, d: &mut Deltas) {
    let Some(p) = l.created_period.clone().filter(|_| l.known && l.reach != reach) else { return };
    let s = l.slice();
    let figure = |r: Reach| match r {
        Reach::Verified => Some(figure::LEADS_VERIFIED),
        Reach::Bounced => Some(figure::LEADS_BOUNCED),
        Reach::Unknown => None,
    };
    if let Some(before) = figure(l.reach) {
        d.add(&l.tenant_id, &p, &s, before, -1);
    }
    if let Some(now) = figure(reach) {
        d.add(&l.tenant_id, &p, &s, now, 1);
    }
    l.reach = reach;
}

/// A provider's finding about a contact recounts every lead created with it, in the month and
/// slice each lead was created in.
fn contact_verified(facts: &mut Facts, tenant: &str, v: &ContactVerified, d: &mut Deltas) {
    let contact = facts.contact(tenant, &v.contact_id);
    contact.record(v.channel, v.status);
    let (reach, leads) = (contact.reach(), contact.leads.clone());
    for lead in leads {
        recount_reach(facts.lead(tenant, &lead), reach, d);
    }
}

/// Rejections by reason, and acceptances over stale contact data, from the
/// audit trail (of the SDR funnel: not of expansions).
fn decision(facts: &Facts, tenant: &str, dec: &Decision, d: &mut Deltas) {
    let Some(f) = facts.opportunity(tenant, &dec.opportunity_id).filter(|f| !f.expansion) else { return };
    let p = period(dec.decided_at);
    match &dec.verdict {
        Verdict::Reject { reason } => {
            d.add(tenant, &p, &f.slice(), format!("{}{reason}", figure::REJECT_REASON), 1);
        }
        Verdict::Accept { failed_checks } => {
            let stale = failed_checks.contains(&GateCheckCode::ContactDataStale);
            d.add(tenant, &p, &f.slice(), figure::STALE_CONTACTS, i64::from(stale));
        }
    }
}

/// A reviewer's verdict counts once per sample, in the month of the decision and its
/// opportunity's slice; a changed verdict only moves the agreed count.
fn review(facts: &Facts, tenant: &str, r: &CalibrationReview, d: &mut Deltas) {
    let Some(f) = facts.opportunity(tenant, &r.opportunity_id).filter(|f| !f.expansion) else { return };
    let p = period(r.decided_at);
    let s = f.slice();
    let agree = i64::from(r.agree);
    match r.previous_agree {
        None => {
            d.add(tenant, &p, &s, figure::CALIBRATION_REVIEWED, 1);
            d.add(tenant, &p, &s, figure::CALIBRATION_AGREED, agree);
        }
        Some(before) => d.add(tenant, &p, &s, figure::CALIBRATION_AGREED, agree - i64::from(before)),
    }
}
