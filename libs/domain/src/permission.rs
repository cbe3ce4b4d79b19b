//! Who may do what: every role rule of Qualify, written once. Services call
//! these before anything else, so a refused caller learns nothing; no service
//! checks a role itself (CI refuses a role check outside this crate).
//!
//! The opportunity state machine ([`crate::OpportunityState::apply`]) holds
//! the rules of deciding, resubmitting and closing deals; the stage machine
//! ([`crate::LeadStage::may_move`]) which moves each mover may make.

use crate::role::{Caller, Role};

/// The tenant of the platform's own operators and service accounts: they read
/// every tenant's event streams and run cluster-wide operations.
pub const SYSTEM_TENANT: &str = "qualify-system";

/// A refusal: the `ErrorInfo` reason and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// UPPER_SNAKE_CASE reason.
    pub reason: &'static str,
    /// What the caller is told.
    pub message: String,
}

fn deny(reason: &'static str, message: impl Into<String>) -> Result<(), Denied> {
    Err(Denied { reason, message: message.into() })
}

/// A person, not automation: a token that carries the service role is
/// automation whatever other roles it claims.
fn human(c: &Caller) -> bool {
    !c.is_automation()
}

/// The tenant's rules (scorecards, gate policies and their backtests, quotas)
/// are set by a person in RevOps or sales management; `what` completes
/// "only RevOps or a manager can …".
pub fn administer(c: &Caller, what: &str) -> Result<(), Denied> {
    if human(c) && c.has_any(&[Role::Revops, Role::Manager]) {
        return Ok(());
    }
    deny("ROLE_REQUIRED", format!("only RevOps or a manager can {what}"))
}

/// Re-scoring a tenant's leads and storing the results: RevOps, managers and services.
pub fn rescore_and_store(c: &Caller) -> Result<(), Denied> {
    if c.has_any(&[Role::Revops, Role::Manager, Role::Service]) {
        return Ok(());
    }
    deny("ROLE_REQUIRED", "only RevOps, managers and services re-score with apply")
}

/// Which role moves a lead by hand, strongest first: only people in sales roles do.
pub fn move_leads_by_hand(c: &Caller) -> Result<Role, Denied> {
    if !human(c) {
        return Err(Denied {
            reason: "HUMAN_REQUIRED",
            message: "automation cannot move leads through sales stages".into(),
        });
    }
    [Role::Manager, Role::Sdr, Role::Ae]
        .into_iter()
        .find(|r| c.has(*r))
        .ok_or_else(|| Denied { reason: "ROLE_REQUIRED", message: "only sales roles move leads".into() })
}

/// Activities on an opportunity come from its AE, a manager or CRM sync.
pub fn record_activity(c: &Caller) -> Result<(), Denied> {
    if c.has_any(&[Role::Ae, Role::Manager, Role::Service]) {
        return Ok(());
    }
    deny("ROLE_REQUIRED", "only account executives, managers and CRM sync record activities")
}

/// Marking an email or phone verified (or bounced) is for verifiers only: an
/// enrichment integration or data-ops service holding the verifier role. What
/// anyone else enters as verified is kept as self-reported. A token that also
/// carries a sales role never verifies: whoever works deals does not vouch for
/// the data the gate judges them by.
pub fn verify_contacts(c: &Caller) -> Result<(), Denied> {
    if c.has_any(&[Role::Sdr, Role::Ae, Role::Manager]) {
        return deny("VERIFIER_REQUIRED", "a sales role cannot record contact verifications");
    }
    if c.has(Role::Verifier) {
        return Ok(());
    }
    deny("VERIFIER_REQUIRED", "only a verifier records contact verifications")
}

/// History (records with past times, marked imported) is written by an
/// importer only, through the import RPCs; the live RPCs keep the server's
/// time. A token that also carries a sales role never imports: whoever is
/// measured by the funnel does not write its past.
pub fn import_history(c: &Caller) -> Result<(), Denied> {
    if c.has_any(&[Role::Sdr, Role::Ae, Role::Manager]) {
        return deny("IMPORTER_REQUIRED", "a sales role cannot import history");
    }
    if c.has(Role::Importer) {
        return Ok(());
    }
    deny("IMPORTER_REQUIRED", "only an importer imports history")
}

/// Calibration samples are drawn by people in sales management or RevOps.
pub fn draw_calibration_sample(c: &Caller) -> Result<(), Denied> {
    if human(c) && c.has_any(&[Role::Manager, Role::Revops]) {
        return Ok(());
    }
    deny("ROLE_REQUIRED", "only managers and RevOps draw calibration samples")
}

/// Calibration reviews and agreement are for people who judge deals.
pub fn calibrate(c: &Caller) -> Result<(), Denied> {
    if human(c) && c.has_any(&[Role::Ae, Role::Manager, Role::Revops]) {
        return Ok(());
    }
    deny("ROLE_REQUIRED", "only account executives, managers and RevOps calibrate")
}

/// A reviewer never calibrates a decision of their own.
pub fn review_decision(c: &Caller, decided_by: &str) -> Result<(), Denied> {
    calibrate(c)?;
    if c.subject == decided_by {
        return deny("OWN_DECISION", "a reviewer cannot calibrate their own decision");
    }
    Ok(())
}

/// Event streams are read by service accounts; whose events: a service
/// account of [`SYSTEM_TENANT`] reads every tenant's (`None`), any other its own.
pub fn read_event_stream(c: &Caller) -> Result<Option<String>, Denied> {
    if !c.has(Role::Service) {
        return Err(Denied {
            reason: "SERVICE_ACCOUNT_REQUIRED",
            message: "only service accounts read the event stream".into(),
        });
    }
    Ok((c.tenant != SYSTEM_TENANT).then(|| c.tenant.clone()))
}

/// Cluster-wide operations (ingestion status, rebuilding roll-ups) are for the
/// platform tenant's RevOps operators and service accounts only; `what`
/// completes "only … of the platform tenant …".
pub fn operate_platform(c: &Caller, what: &str) -> Result<(), Denied> {
    if c.tenant == SYSTEM_TENANT && c.has_any(&[Role::Revops, Role::Service]) {
        return Ok(());
    }
    deny(
        "PLATFORM_OPERATOR_REQUIRED",
        format!("only a RevOps operator or service account of the platform tenant {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(tenant: &str, roles: &[Role]) -> Caller {
        Caller { tenant: tenant.into(), subject: "ada".into(), roles: roles.to_vec() }
    }

    #[test]
    fn the_rules_are_administered_by_people_in_revops_or_management_only() {
        for ok in [&[Role::Revops][..], &[Role::Manager], &[Role::Sdr, Role::Manager]] {
            assert_eq!(administer(&caller("t", ok), "publish a scorecard"), Ok(()));
        }
        for no in [&[Role::Sdr][..], &[Role::Ae], &[Role::Service], &[Role::Revops, Role::Service]] {
            let d = administer(&caller("t", no), "publish a scorecard").unwrap_err();
            assert_eq!(
                (d.reason, d.message.as_str()),
                ("ROLE_REQUIRED", "only RevOps or a manager can publish a scorecard")
            );
        }
    }

    #[test]
    fn leads_are_moved_by_hand_by_the_strongest_sales_role_and_never_by_automation() {
        assert_eq!(move_leads_by_hand(&caller("t", &[Role::Sdr, Role::Manager])), Ok(Role::Manager));
        assert_eq!(move_leads_by_hand(&caller("t", &[Role::Ae])), Ok(Role::Ae));
        assert_eq!(move_leads_by_hand(&caller("t", &[Role::Revops])).unwrap_err().reason, "ROLE_REQUIRED");
        assert_eq!(move_leads_by_hand(&caller("t", &[Role::Sdr, Role::Service])).unwrap_err().reason, "HUMAN_REQUIRED");
    }

    #[test]
    fn calibration_is_human_and_never_of_ones_own_decision() {
        assert!(draw_calibration_sample(&caller("t", &[Role::Manager])).is_ok());
        assert!(draw_calibration_sample(&caller("t", &[Role::Ae])).is_err());
        assert!(calibrate(&caller("t", &[Role::Ae])).is_ok());
        assert!(calibrate(&caller("t", &[Role::Ae, Role::Service])).is_err());
        assert_eq!(review_decision(&caller("t", &[Role::Manager]), "ada").unwrap_err().reason, "OWN_DECISION");
        assert!(review_decision(&caller("t", &[Role::Manager]), "bob").is_ok());
    }

    #[test]
    fn streams_are_read_by_services_and_only_the_platform_tenant_reads_every_tenant() {
        assert_eq!(read_event_stream(&caller("acme", &[Role::Service])), Ok(Some("acme".into())));
        assert_eq!(read_event_stream(&caller(SYSTEM_TENANT, &[Role::Service])), Ok(None));
        assert!(read_event_stream(&caller("acme", &[Role::Revops])).is_err());
        assert!(operate_platform(&caller(SYSTEM_TENANT, &[Role::Revops]), "rebuilds roll-ups").is_ok());
        assert!(operate_platform(&caller("acme", &[Role::Revops, Role::Service]), "rebuilds roll-ups").is_err());
        assert!(operate_platform(&caller(SYSTEM_TENANT, &[Role::Manager]), "rebuilds roll-ups").is_err());
    }

    #[test]
    fn only_a_verifier_records_contact_verifications() {
        for role in Role::ALL {
            let allowed = verify_contacts(&caller("t", &[role])).is_ok();
            assert_eq!(allowed, role == Role::Verifier, "{role:?}");
        }
        // Whoever works deals never vouches for the data the gate judges them by.
        for sales in [Role::Sdr, Role::Ae, Role::Manager] {
            assert!(verify_contacts(&caller("t", &[sales, Role::Verifier])).is_err(), "{sales:?}");
        }
        assert!(verify_contacts(&caller("t", &[Role::Service, Role::Verifier])).is_ok());
        assert_eq!(verify_contacts(&caller("t", &[])).unwrap_err().reason, "VERIFIER_REQUIRED");
    }

    #[test]
    fn only_an_importer_without_a_sales_role_imports_history() {
        for role in Role::ALL {
            assert_eq!(import_history(&caller("t", &[role])).is_ok(), role == Role::Importer, "{role:?}");
        }
        for sales in [Role::Sdr, Role::Ae, Role::Manager] {
            assert_eq!(import_history(&caller("t", &[sales, Role::Importer])).unwrap_err().reason, "IMPORTER_REQUIRED");
        }
        assert!(import_history(&caller("t", &[Role::Service, Role::Importer])).is_ok());
    }

    #[test]
    fn rescoring_with_apply_and_activities_have_their_roles() {
        assert!(rescore_and_store(&caller("t", &[Role::Service])).is_ok());
        assert!(rescore_and_store(&caller("t", &[Role::Sdr])).is_err());
        assert!(record_activity(&caller("t", &[Role::Ae])).is_ok());
        assert!(record_activity(&caller("t", &[Role::Sdr])).is_err());
    }

    #[test]
    fn only_verifiers_record_verifications_whatever_else_a_caller_holds() {
        assert!(verify_contacts(&caller("t", &[Role::Verifier])).is_ok());
        assert!(verify_contacts(&caller("t", &[Role::Verifier, Role::Service])).is_ok());
        for no in [&[Role::Sdr][..], &[Role::Ae], &[Role::Manager, Role::Revops], &[Role::Service]] {
            assert_eq!(verify_contacts(&caller("t", no)).unwrap_err().reason, "VERIFIER_REQUIRED");
        }
    }
}
