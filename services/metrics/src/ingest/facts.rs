//! What metrics remembers of each lead and opportunity between events, so a
//! later event is counted in the slice and cohort its subject entered. A batch
//! loads the facts its events touch once and writes back those it changed once.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use qualify_domain::{Channel, Verification};
use sea_orm::DatabaseTransaction;

use super::event::{Change, Event};
use crate::rollup::Slice;
use crate::store;

/// (tenant, id) of a lead or an opportunity.
pub(crate) type FactKey = (String, String);

/// A lead: its slice and when it entered each cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeadFact {
    pub tenant_id: String,
    pub lead_id: String,
    /// Whether the lead's creation has been seen (its slice is known).
    pub known: bool,
    /// Month the lead was created.
    pub created_period: Option<String>,
    pub source: String,
    pub segment: String,
    pub rep: String,
    pub campaign: String,
    pub mql_period: Option<String>,
    pub sql_period: Option<String>,
    /// An opportunity of the lead was accepted (seen on the other stream, maybe first).
    pub reached_sqo: bool,
    /// An opportunity of the lead was won.
    pub reached_won: bool,
    /// Its contact, if known.
    pub contact_id: String,
    /// What the lead is counted as in its cohort of reach: its contact's [`Reach`] when last counted.
    pub reach: Reach,
}

/// What providers found of a contact, as a lead is counted by it: verified
/// (some channel verified), bounced (none verified, some bounced or gone), or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Reach {
    #[default]
    Unknown,
    Verified,
    Bounced,
}

impl Reach {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reach::Unknown => "",
            Reach::Verified => "verified",
            Reach::Bounced => "bounced",
        }
    }

    /// The reach stored as `s`.
    pub fn parse(s: &str) -> Self {
        [Reach::Verified, Reach::Bounced].into_iter().find(|r| r.as_str() == s).unwrap_or_default()
    }
}

/// A contact: the latest finding per channel, and the leads it is the contact of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContactFact {
    pub tenant_id: String,
    pub contact_id: String,
    pub email: Verification,
    pub phone: Verification,
    /// Leads created with this contact.
    pub leads: Vec<String>,
}

impl ContactFact {
    fn unseen(tenant: &str, contact_id: &str) -> Self {
        ContactFact {
            tenant_id: tenant.to_string(),
            contact_id: contact_id.to_string(),
            email: Verification::Unverified,
            phone: Verification::Unverified,
            leads: vec![],
        }
    }

    /// Records a finding on its channel.
    pub fn record(&mut self, channel: Channel, status: Verification) {
        match channel {
            Channel::Email => self.email = status,
            Channel::Phone => self.phone = status,
        }
    }

    /// How its leads are counted.
    pub fn reach(&self) -> Reach {
        let gone = |v: Verification| matches!(v, Verification::Bounced | Verification::LeftCompany);
        if self.email == Verification::Verified || self.phone == Verification::Verified {
            Reach::Verified
        } else if gone(self.email) || gone(self.phone) {
            Reach::Bounced
        } else {
            Reach::Unknown
        }
    }
}

impl LeadFact {
    /// A lead not seen before: its creation may arrive after events of the other stream.
    fn unseen(tenant: &str, lead_id: &str) -> Self {
        LeadFact {
            tenant_id: tenant.to_string(),
            lead_id: lead_id.to_string(),
            known: false,
            created_period: None,
            source: String::new(),
            segment: String::new(),
            rep: String::new(),
            campaign: String::new(),
            mql_period: None,
            sql_period: None,
            reached_sqo: false,
            reached_won: false,
            contact_id: String::new(),
            reach: Reach::Unknown,
        }
    }

    /// The slice its figures are counted in (a lead has no team).
    pub fn slice(&self) -> Slice {
        Slice {
            source: self.source.clone(),
            segment: self.segment.clone(),
            team: String::new(),
            rep: self.rep.clone(),
            campaign: self.campaign.clone(),
        }
    }
}

/// An opportunity: its slice, value, and how far it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpportunityFact {
    pub tenant_id: String,
    pub opportunity_id: String,
    pub lead_id: String,
    pub source: String,
    pub segment: String,
    pub team: String,
    pub rep: String,
    pub campaign: String,
    pub amount_minor: i64,
    /// The currency of its amounts.
    pub currency_code: String,
    /// An expansion: counted apart from the SDR funnel.
    pub expansion: bool,
    /// Month it was accepted.
    pub accept_period: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// A meaningful activity followed the acceptance.
    pub meaningful_activity: bool,
    pub closed: bool,
}

impl OpportunityFact {
    /// The slice its figures are counted in.
    pub fn slice(&self) -> Slice {
        Slice {
            source: self.source.clone(),
            segment: self.segment.clone(),
            team: self.team.clone(),
            rep: self.rep.clone(),
            campaign: self.campaign.clone(),
        }
    }
}

/// The facts a batch touches, loaded once and written once.
#[derive(Default)]
pub(crate) struct Facts {
    pub leads: HashMap<FactKey, LeadFact>,
    pub opportunities: HashMap<FactKey, OpportunityFact>,
    pub contacts: HashMap<FactKey, ContactFact>,
    pub dirty_leads: HashSet<FactKey>,
    pub dirty_opportunities: HashSet<FactKey>,
    pub dirty_contacts: HashSet<FactKey>,
}

impl Facts {
    /// Loads the facts `events` refer to, in one query per table.
    pub async fn load(txn: &DatabaseTransaction, events: &[&Event]) -> Result<Self, sea_orm::DbErr> {
        let (mut lead_keys, mut opp_keys, mut contact_keys) = (HashSet::new(), HashSet::new(), HashSet::new());
        for e in events {
            let key = |id: &str| (e.tenant.clone(), id.to_string());
            match &e.change {
                Some(Change::LeadCreated(c)) => {
                    lead_keys.insert(key(&c.lead_id));
                    if !c.contact_id.is_empty() {
                        contact_keys.insert(key(&c.contact_id));
                    }
                }
                Some(Change::ContactVerified(v)) => {
                    contact_keys.insert(key(&v.contact_id));
                }
                Some(Change::LeadStageChanged(ch)) => {
                    lead_keys.insert(key(&ch.lead_id));
                }
                Some(Change::OpportunityChanged(o)) => {
                    opp_keys.insert(key(&o.opportunity_id));
                    lead_keys.insert(key(&o.lead_id));
                }
                Some(Change::DecisionRecorded(d)) => {
                    opp_keys.insert(key(&d.opportunity_id));
                }
                Some(Change::CalibrationReviewed(r)) => {
                    opp_keys.insert(key(&r.opportunity_id));
                }
                None => {}
            }
        }
        // A finding about a contact recounts the leads it is the contact of.
        let contact_keys: Vec<FactKey> = contact_keys.into_iter().collect();
        let contacts = store::facts::load_contacts(txn, &contact_keys).await?;
        for c in &contacts {
            lead_keys.extend(c.leads.iter().map(|l| (c.tenant_id.clone(), l.clone())));
        }
        let lead_keys: Vec<FactKey> = lead_keys.into_iter().collect();
        let opp_keys: Vec<FactKey> = opp_keys.into_iter().collect();
        let (leads, opportunities) = store::facts::load(txn, &lead_keys, &opp_keys).await?;
        Ok(Facts {
            leads: leads.into_iter().map(|f| ((f.tenant_id.clone(), f.lead_id.clone()), f)).collect(),
            opportunities: opportunities
                .into_iter()
                .map(|f| ((f.tenant_id.clone(), f.opportunity_id.clone()), f))
                .collect(),
            contacts: contacts.into_iter().map(|f| ((f.tenant_id.clone(), f.contact_id.clone()), f)).collect(),
            ..Facts::default()
        })
    }

    /// The lead's fact (a blank one if unseen), marked to be written.
    pub fn lead(&mut self, tenant: &str, lead_id: &str) -> &mut LeadFact {
        let key = (tenant.to_string(), lead_id.to_string());
        self.dirty_leads.insert(key.clone());
        self.leads.entry(key).or_insert_with(|| LeadFact::unseen(tenant, lead_id))
    }

    /// The contact's fact (a blank one if unseen), marked to be written.
    pub fn contact(&mut self, tenant: &str, contact_id: &str) -> &mut ContactFact {
        let key = (tenant.to_string(), contact_id.to_string());
        self.dirty_contacts.insert(key.clone());
        self.contacts.entry(key).or_insert_with(|| ContactFact::unseen(tenant, contact_id))
    }

    /// The opportunity's fact, if seen.
    pub fn opportunity(&self, tenant: &str, opportunity_id: &str) -> Option<&OpportunityFact> {
        self.opportunities.get(&(tenant.to_string(), opportunity_id.to_string()))
    }

    /// Stores `fact` and marks it to be written.
    pub fn put_opportunity(&mut self, fact: OpportunityFact) {
        let key = (fact.tenant_id.clone(), fact.opportunity_id.clone());
        self.dirty_opportunities.insert(key.clone());
        self.opportunities.insert(key, fact);
    }

    /// Writes every touched fact, a few statements per table.
    pub async fn write(mut self, txn: &DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        let leads: Vec<LeadFact> = self.dirty_leads.iter().filter_map(|k| self.leads.remove(k)).collect();
        let opportunities: Vec<OpportunityFact> =
            self.dirty_opportunities.iter().filter_map(|k| self.opportunities.remove(k)).collect();
        let contacts: Vec<ContactFact> = self.dirty_contacts.iter().filter_map(|k| self.contacts.remove(k)).collect();
        store::facts::write_contacts(txn, contacts).await?;
        store::facts::write(txn, leads, opportunities).await
    }
}
