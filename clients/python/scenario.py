#!/usr/bin/env python3
"""Drives a whole Qualify scenario from Python, through stubs generated from proto/.

A lead goes from creation to a closed-won opportunity and the funnel is checked to the unit:

  1. service  CreateAccount, two CreateContact (economic buyer, champion), CreateLead;
     verifier RecordContactVerifications (a provider verified both emails; the SDR is refused)
  2. revops   PublishScorecard, IngestSignals, StreamSignals (a replay: duplicates), ScoreLead
              (contributions add up to the total)
  3. sdr      AcceptLead, QualifyLead                                   -> lead at SQL
  4. sdr      SubmitOpportunity (BANT confirmed, buying group, next step) -> PENDING_REVIEW
  5. ae       EvaluateGate, AcceptOpportunity -> ACCEPTED (the SDR is refused: PERMISSION_DENIED)
  6. ae       RecordActivity, AdvanceOpportunity x2, CloseOpportunity(won) -> CLOSED_WON
  7. revops   GetFunnel for the month (polled: metrics ingests asynchronously), GetFunnelHealth
  8. service  CreateLead with an empty lead_id -> INVALID_ARGUMENT + google.rpc.BadRequest

The tenant must be fresh: the funnel figures are asserted exactly.

Generate the stubs first (`.ci/clients-check` does all of this):

  python -m grpc_tools.protoc -I proto --python_out=clients/python/qualify_pb \
      --grpc_python_out=clients/python/qualify_pb proto/qualify/*/v1/*.proto

Environment:
  QUALIFY_TOKEN_SERVICE, QUALIFY_TOKEN_REVOPS, QUALIFY_TOKEN_SDR, QUALIFY_TOKEN_AE,
  QUALIFY_TOKEN_VERIFIER
      bearer tokens of one tenant (`qualify token --tenant T --subject S --role R`); the SDR
      and the AE must be different subjects
  QUALIFY_SCORING_TARGET, QUALIFY_ACCEPTANCE_TARGET, QUALIFY_METRICS_TARGET
      host:port, default 127.0.0.1:50051 / :50052 / :50053
  QUALIFY_PY_GEN_DIR   where the generated stubs are (default: qualify_pb beside this file)
  QUALIFY_FUNNEL_WAIT_SECS  how long to poll the funnel (default 30)
"""

import base64
import datetime as dt
import json
import os
import sys
import time
import uuid

import grpc
from google.protobuf import text_format, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("QUALIFY_PY_GEN_DIR", os.path.join(HERE, "qualify_pb")))

from qualify.acceptance.v1 import acceptance_pb2 as acc  # noqa: E402
from qualify.acceptance.v1 import acceptance_pb2_grpc as acc_grpc  # noqa: E402
from qualify.common.v1 import common_pb2 as common  # noqa: E402
from qualify.metrics.v1 import metrics_pb2 as met  # noqa: E402
from qualify.metrics.v1 import metrics_pb2_grpc as met_grpc  # noqa: E402
from qualify.scoring.v1 import scoring_pb2 as sc  # noqa: E402
from qualify.scoring.v1 import scoring_pb2_grpc as sc_grpc  # noqa: E402

TIMEOUT = 15.0  # seconds per RPC
PIPELINE_MINOR = 2_400_000  # USD 24,000.00 submitted
WON_MINOR = 2_250_000  # USD 22,500.00 signed (a discount), so won != pipeline is visible


class ScenarioError(Exception):
    pass


def expect(cond, what):
    """A real check (never stripped by python -O)."""
    if not cond:
        raise ScenarioError(what)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise ScenarioError(f"{what}: expected {expected!r}, got {actual!r}")


def step(n, text):
    print(f"[py] step {n}: {text}", flush=True)


def info(text):
    print(f"[py]   {text}", flush=True)


def env_token(name):
    value = os.environ.get(name, "").strip()
    if not value:
        raise ScenarioError(f"{name} is not set (mint it with `qualify token ...`)")
    return value


def claims(token):
    """The token's claims, read without verifying (the server verifies)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def auth(token):
    return [("authorization", f"Bearer {token}")]


def ts(when):
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(when)
    return t


def rpc(method, request, token):
    return method(request, metadata=auth(token), timeout=TIMEOUT)


def rpc_error(method, request, token, code, what):
    """Calls and expects a failure with the given status code; returns the grpc.RpcError."""
    try:
        method(request, metadata=auth(token), timeout=TIMEOUT)
    except grpc.RpcError as err:
        expect_eq(err.code(), code, f"{what}: status code (message: {err.details()!r})")
        return err
    raise ScenarioError(f"{what}: expected {code.name}, the call succeeded")


def status_details(err):
    """Decodes the google.rpc.Status of an error from its grpc-status-details-bin trailer."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    raise ScenarioError(f"no grpc-status-details-bin trailer on {err.code().name}: {err.details()!r}")


def describe(status):
    """google.rpc.Status, one line: its message and each detail it carries."""
    parts = [repr(status.message)]
    for any_detail in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo,
                     error_details_pb2.PreconditionFailure, error_details_pb2.RetryInfo):
            if any_detail.Is(kind.DESCRIPTOR):
                msg = kind()
                any_detail.Unpack(msg)
                parts.append(f"{kind.DESCRIPTOR.name} {{{text_format.MessageToString(msg, as_one_line=True)}}}")
                break
        else:
            parts.append(any_detail.type_url)
    return " ".join(parts)


def main():
    service_tok = env_token("QUALIFY_TOKEN_SERVICE")
    revops_tok = env_token("QUALIFY_TOKEN_REVOPS")
    sdr_tok = env_token("QUALIFY_TOKEN_SDR")
    ae_tok = env_token("QUALIFY_TOKEN_AE")
    verifier_tok = env_token("QUALIFY_TOKEN_VERIFIER")
    tenants = {claims(t)["tenant"] for t in (service_tok, revops_tok, sdr_tok, ae_tok, verifier_tok)}
    expect(len(tenants) == 1, f"the five tokens must share one tenant, got {sorted(tenants)}")
    tenant = tenants.pop()
    sdr = claims(sdr_tok)["sub"]
    ae = claims(ae_tok)["sub"]
    expect(sdr != ae, "the SDR and the AE must be different subjects")

    scoring = sc_grpc.LeadScoringServiceStub(
        grpc.insecure_channel(os.environ.get("QUALIFY_SCORING_TARGET", "127.0.0.1:50051")))
    acceptance = acc_grpc.OpportunityAcceptanceServiceStub(
        grpc.insecure_channel(os.environ.get("QUALIFY_ACCEPTANCE_TARGET", "127.0.0.1:50052")))
    metrics = met_grpc.MetricsServiceStub(
        grpc.insecure_channel(os.environ.get("QUALIFY_METRICS_TARGET", "127.0.0.1:50053")))

    run = uuid.uuid4().hex[:8]  # request ids and signal ids are unique per run

    def rid(name):
        return f"py-{run}-{name}"

    now = dt.datetime.now(dt.timezone.utc)
    first_period = now.strftime("%Y-%m")
    account_id, eb_id, champ_id = "py-acme", "py-acme-eb", "py-acme-champion"
    lead_id, opp_id = "py-lead-1", "py-opp-1"
    print(f"[py] tenant {tenant}, sdr {sdr}, ae {ae}, run {run}", flush=True)

    # 1. The CRM sync (a service account) brings in the account, its people and the lead.
    step(1, "service: CreateAccount, CreateContact x2, CreateLead")
    account = rpc(scoring.CreateAccount, sc.CreateAccountRequest(
        account=sc.Account(account_id=account_id, display_name="Acme Payments", industry="Fintech",
                           employee_count=120, revenue_band="10m-50m", region="emea",
                           segment=common.SEGMENT_SMB),
        request_id=rid("account")), service_tok).account
    expect_eq(account.account_id, account_id, "account id")
    expect_eq(account.segment, common.SEGMENT_SMB, "account segment")
    expect_eq(account.industry, "fintech", "industry is normalised to lower case")
    expect(account.etag != "", "account has an etag")
    info(f"account {account.account_id} ({common.Segment.Name(account.segment)})")

    verified = now - dt.timedelta(days=4)
    for cid, name, title, seniority, role in (
        (eb_id, "Dana Whitfield", "VP Finance", "vp", common.BUYING_ROLE_ECONOMIC_BUYER),
        (champ_id, "Sam Ortega", "Head of Payments Ops", "director", common.BUYING_ROLE_CHAMPION),
    ):
        contact = rpc(scoring.CreateContact, sc.CreateContactRequest(
            contact=sc.Contact(contact_id=cid, account_id=account_id, full_name=name, title=title,
                               seniority=seniority, department="finance", buying_role=role,
                               email=f"{cid}@acme.example"),
            request_id=rid(f"contact-{cid}")), service_tok).contact
        expect_eq(contact.buying_role, role, f"contact {cid} buying role")
        info(f"contact {cid} ({common.BuyingRole.Name(role)})")

    # Only a verifier (an enrichment integration) records that a provider verified an email.
    feed = sc.RecordContactVerificationsRequest(
        verifications=[sc.ContactVerification(contact_id=cid, channel=sc.CONTACT_CHANNEL_EMAIL,
                                              status=sc.VERIFICATION_STATUS_VERIFIED, provider="zerobounce",
                                              verify_time=ts(verified)) for cid in (eb_id, champ_id)],
        request_id=rid("verifications"))
    rpc_error(scoring.RecordContactVerifications, feed, sdr_tok, grpc.StatusCode.PERMISSION_DENIED,
              "RecordContactVerifications by the SDR")
    recorded = rpc(scoring.RecordContactVerifications, feed, verifier_tok)
    expect_eq([r.outcome for r in recorded.results], [sc.VERIFICATION_OUTCOME_APPLIED] * 2, "both findings applied")
    expect_eq((recorded.applied_count, recorded.rejected_count, recorded.not_found_count, recorded.superseded_count),
              (2, 0, 0, 0), "feed counts (applied, rejected, not found, superseded)")
    for cid in (eb_id, champ_id):
        contact = rpc(scoring.GetContact, sc.GetContactRequest(contact_id=cid), service_tok).contact
        expect_eq((contact.email_status, contact.email_verify_provider, contact.email_verify_time.seconds),
                  (sc.VERIFICATION_STATUS_VERIFIED, "zerobounce", ts(verified).seconds), f"contact {cid} verified")
    info("both emails verified 4 days ago by zerobounce, as the verifier's feed recorded (the SDR is refused)")

    lead = rpc(scoring.CreateLead, sc.CreateLeadRequest(
        lead=sc.Lead(lead_id=lead_id, account_id=account_id, source=common.LEAD_SOURCE_INBOUND,
                     campaign="py-spring-webinar", owner_sdr=sdr, contact_id=eb_id),
        request_id=rid("lead")), service_tok).lead
    expect_eq(lead.stage, common.LEAD_STAGE_NEW, "a new lead's stage")
    expect_eq(lead.owner_sdr, sdr, "lead owner")
    info(f"lead {lead.lead_id} at {common.LeadStage.Name(lead.stage)}")

    # 2. RevOps publishes the SMB scorecard; signals arrive; the lead is scored and explained.
    step(2, "revops: PublishScorecard, IngestSignals, ScoreLead")
    card = sc.Scorecard(
        segment=common.SEGMENT_SMB,
        fit_rules=[
            sc.FitRule(id="fit-industry", attribute=sc.ATTRIBUTE_INDUSTRY, points=20,
                       one_of=sc.StringList(values=["fintech", "saas"])),
            sc.FitRule(id="fit-size", attribute=sc.ATTRIBUTE_EMPLOYEE_COUNT, points=15,
                       between=sc.Range(min=50, max=500)),
            sc.FitRule(id="fit-seniority", attribute=sc.ATTRIBUTE_SENIORITY, points=10,
                       one_of=sc.StringList(values=["vp", "c-level"])),
        ],
        engagement_rules=[
            sc.EngagementRule(id="eng-pricing", signal_type=sc.SIGNAL_TYPE_PRICING_PAGE_VISIT,
                              points=10, half_life_days=0, cap=30, window_days=90),
            sc.EngagementRule(id="eng-demo", signal_type=sc.SIGNAL_TYPE_DEMO_REQUEST,
                              points=25, half_life_days=0, cap=0, window_days=0),
            sc.EngagementRule(id="eng-webinar", signal_type=sc.SIGNAL_TYPE_WEBINAR_ATTENDED,
                              points=8, half_life_days=14, cap=0, window_days=60),
        ],
        mql_threshold=50, pql_threshold=0,
        grade_bands=sc.GradeBands(fit_a=40, fit_b=25, fit_c=10,
                                  engagement_1=40, engagement_2=20, engagement_3=10),
        framework=common.FRAMEWORK_BANT)
    try:
        published = rpc(scoring.PublishScorecard, sc.PublishScorecardRequest(
            scorecard=card, expected_version=0, request_id=rid("scorecard")), revops_tok).scorecard
    except grpc.RpcError as err:
        raise ScenarioError(f"PublishScorecard refused: {err.code().name} {describe(status_details(err))}") from err
    expect(published.version >= 1, f"published version is assigned, got {published.version}")
    expect_eq(published.published_by, claims(revops_tok)["sub"], "scorecard published_by")
    expect_eq(len(published.fit_rules), 3, "published fit rules")
    info(f"scorecard SMB v{published.version} published by {published.published_by}")

    signals = [
        (sc.SIGNAL_TYPE_PRICING_PAGE_VISIT, now - dt.timedelta(days=2), eb_id),
        (sc.SIGNAL_TYPE_PRICING_PAGE_VISIT, now - dt.timedelta(days=1), champ_id),
        (sc.SIGNAL_TYPE_DEMO_REQUEST, now - dt.timedelta(hours=3), eb_id),
        (sc.SIGNAL_TYPE_WEBINAR_ATTENDED, now - dt.timedelta(days=10), champ_id),
    ]
    ingest = rpc(scoring.IngestSignals, sc.IngestSignalsRequest(signals=[
        sc.Signal(signal_id=f"py-sig-{run}-{i}", lead_id=lead_id, contact_id=c, type=t, occur_time=ts(w))
        for i, (t, w, c) in enumerate(signals, 1)]), revops_tok)
    expect_eq((ingest.accepted_count, ingest.duplicate_count, ingest.rejected_count), (4, 0, 0),
              "IngestSignals accepted/duplicate/rejected")
    expect(all(r.outcome == sc.SIGNAL_OUTCOME_ACCEPTED for r in ingest.results), "every signal ACCEPTED")
    moves = [(common.LeadStage.Name(c.from_stage), common.LeadStage.Name(c.to_stage)) for c in ingest.stage_changes]
    info(f"4 signals accepted; stage moves: {moves}")

    # A pipeline replays the same four signals on a stream (bidirectional streaming): acknowledged
    # at position 1, every one a duplicate; reopening the stream gives back that position.
    stream_id = f"py-pipeline-{run}"
    replay = [sc.StreamSignalsRequest(stream_id=stream_id), sc.StreamSignalsRequest(
        stream_id=stream_id, position=1, signals=[
            sc.Signal(signal_id=f"py-sig-{run}-{i}", lead_id=lead_id, contact_id=c, type=t, occur_time=ts(w))
            for i, (t, w, c) in enumerate(signals, 1)])]
    acks = list(scoring.StreamSignals(iter(replay), metadata=auth(revops_tok), timeout=TIMEOUT))
    expect_eq([a.acknowledged_position for a in acks], [0, 0, 1], "StreamSignals acknowledged positions")
    expect_eq((acks[2].batch.accepted_count, acks[2].batch.duplicate_count), (0, 4),
              "StreamSignals replay accepted/duplicate")
    reopened = list(scoring.StreamSignals(iter([sc.StreamSignalsRequest(stream_id=stream_id)]),
                                          metadata=auth(revops_tok), timeout=TIMEOUT))
    expect_eq(reopened[0].acknowledged_position, 1, "a reopened stream resumes after its acknowledged position")
    info("StreamSignals: the replayed batch acknowledged at 1, 4 duplicates; reopening resumes after 1")

    score = rpc(scoring.ScoreLead, sc.ScoreLeadRequest(lead_id=lead_id), revops_tok).score
    parts = {c.rule_id: c for c in score.contributions}
    info("score %d (fit %d, engagement %d, grade %s, recommends %s), contributions %s" % (
        score.total, score.fit, score.engagement, score.grade,
        common.LeadStage.Name(score.recommended_stage),
        {k: (v.points, v.signal_count) for k, v in parts.items()}))
    expect_eq(sum(c.points for c in score.contributions), score.total, "sum of rule contributions vs total")
    expect_eq(score.fit + score.engagement, score.total, "fit + engagement vs total")
    expect_eq(sum(c.points for c in score.contributions if c.kind == sc.RULE_KIND_FIT), score.fit,
              "sum of fit contributions vs fit")
    expect_eq(score.scorecard_version, published.version, "score's scorecard version")
    # Fit: fintech (20) + 120 employees (15) + the contact is a vp (10).
    expect_eq(score.fit, 45, "fit score")
    expect_eq((parts["eng-pricing"].points, parts["eng-pricing"].signal_count), (20, 2), "eng-pricing")
    expect_eq((parts["eng-demo"].points, parts["eng-demo"].signal_count), (25, 1), "eng-demo")
    # 8 points halving every 14 days, 10 days old: 8 * 0.5^(10/14) = 4.9 -> 5 (or 4 if truncated).
    expect(parts["eng-webinar"].points in (4, 5), f"eng-webinar decayed to 4 or 5, got {parts['eng-webinar'].points}")
    expect_eq(score.grade, "A1", "grade (fit 45 >= 40, engagement >= 40)")
    expect_eq(score.recommended_stage, common.LEAD_STAGE_MQL, "recommended stage (total >= 50)")
    expect_eq(moves, [("LEAD_STAGE_NEW", "LEAD_STAGE_MQL")], "ingestion moved the lead NEW -> MQL")

    # 3. The SDR works the lead.
    step(3, "sdr: AcceptLead, QualifyLead")
    accepted_lead = rpc(scoring.AcceptLead, sc.AcceptLeadRequest(lead_id=lead_id, request_id=rid("accept-lead")),
                        sdr_tok)
    expect_eq(accepted_lead.lead.stage, common.LEAD_STAGE_SAL, "stage after AcceptLead")
    expect_eq(accepted_lead.stage_change.actor.subject, sdr, "AcceptLead actor")
    qualified = rpc(scoring.QualifyLead, sc.QualifyLeadRequest(
        lead_id=lead_id, discovery_call_held=True,
        pain_statement="Month-end reconciliation takes our team four days; we miss close every quarter.",
        request_id=rid("qualify-lead")), sdr_tok)
    expect_eq(qualified.lead.stage, common.LEAD_STAGE_SQL, "stage after QualifyLead")
    expect_eq(qualified.stage_change.from_stage, common.LEAD_STAGE_SAL, "QualifyLead from stage")
    info(f"lead {lead_id}: MQL -> SAL -> {common.LeadStage.Name(qualified.lead.stage)}")

    # 4. The SDR submits the opportunity to the SQO gate.
    step(4, "sdr: SubmitOpportunity")
    bant = [common.CRITERION_BUDGET, common.CRITERION_AUTHORITY, common.CRITERION_NEED, common.CRITERION_TIMELINE]
    evidence = [acc.CriterionEvidence(criterion=c, status=common.EVIDENCE_STATUS_CONFIRMED,
                                      note=f"confirmed on the discovery call ({common.Criterion.Name(c)})",
                                      confirmed_by=sdr) for c in bant]
    stakeholders = [acc.Stakeholder(contact_id=eb_id, role=common.BUYING_ROLE_ECONOMIC_BUYER),
                    acc.Stakeholder(contact_id=champ_id, role=common.BUYING_ROLE_CHAMPION)]
    next_step = acc.NextStep(description="product demo with finance", scheduled_time=ts(now + dt.timedelta(days=3)),
                             type=acc.ACTIVITY_TYPE_DEMO)
    submitted = rpc(acceptance.SubmitOpportunity, acc.SubmitOpportunityRequest(
        opportunity=acc.Opportunity(
            opportunity_id=opp_id, lead_id=lead_id,
            amount=common.Money(amount_minor=PIPELINE_MINOR, currency_code="USD"),
            expected_close_time=ts(now + dt.timedelta(days=60)), segment=common.SEGMENT_SMB,
            evidence=evidence, stakeholders=stakeholders, competitors=["LegacyLedger"],
            next_step=next_step, team="py-emea-smb"),
        request_id=rid("submit")), sdr_tok)
    opp = submitted.opportunity
    expect_eq(opp.state, acc.OPPORTUNITY_STATE_PENDING_REVIEW, "state after SubmitOpportunity")
    expect_eq(opp.submitted_by, sdr, "submitted_by")
    expect_eq(opp.framework, common.FRAMEWORK_BANT, "framework in force")
    expect_eq(opp.amount.amount_minor, PIPELINE_MINOR, "amount")
    expect_eq(opp.lead_snapshot.stage, common.LEAD_STAGE_SQL, "snapshot stage")
    expect_eq(opp.lead_snapshot.score, score.total, "snapshot score")
    expect_eq(opp.lead_snapshot.scorecard_version, published.version, "snapshot scorecard version")
    expect_eq(opp.lead_snapshot.source, common.LEAD_SOURCE_INBOUND, "snapshot source")
    expect_eq(opp.lead_snapshot.campaign, "py-spring-webinar", "snapshot campaign")
    verify_times = {s.contact_id: s.verify_time.seconds for s in opp.stakeholders}
    expect_eq(verify_times, {eb_id: ts(verified).seconds, champ_id: ts(verified).seconds},
              "stakeholder verify times come from lead scoring")
    failed = [acc.GateCheckCode.Name(c.code) for c in submitted.gate.checks if not c.passed]
    expect(submitted.gate.passed and not failed, f"the gate passes at submission, failed checks: {failed}")
    info(f"opportunity {opp_id} {acc.OpportunityState.Name(opp.state)} v{opp.version}, "
         f"snapshot score {opp.lead_snapshot.score}, gate passed ({len(submitted.gate.checks)} checks)")

    # 5. The AE reviews the gate and accepts; the SDR cannot.
    step(5, "ae: EvaluateGate, AcceptOpportunity (and the SDR is refused)")
    gate = rpc(acceptance.EvaluateGate, acc.EvaluateGateRequest(candidate=acc.GateCandidate(
        segment=common.SEGMENT_SMB, evidence=evidence,
        stakeholders=[acc.Stakeholder(contact_id=s.contact_id, role=s.role, verify_time=ts(verified))
                      for s in stakeholders],
        next_step=next_step, score=score.total)), ae_tok)
    codes = {acc.GateCheckCode.Name(c.code) for c in gate.checks}
    expect(gate.passed, f"EvaluateGate passes: {[(acc.GateCheckCode.Name(c.code), c.detail) for c in gate.checks]}")
    expect(all(c.passed for c in gate.checks), "every gate check passed")
    expect("GATE_CHECK_CODE_ECONOMIC_BUYER_MISSING" in codes and "GATE_CHECK_CODE_CHAMPION_MISSING" in codes,
           f"the SMB default policy checks the buying group, got {sorted(codes)}")
    info(f"gate passed: {len(gate.checks)} checks, policy v{gate.policy_version}")

    denied = rpc_error(acceptance.AcceptOpportunity,
                       acc.AcceptOpportunityRequest(opportunity_id=opp_id, request_id=rid("accept-by-sdr")),
                       sdr_tok, grpc.StatusCode.PERMISSION_DENIED, "AcceptOpportunity by the SDR")
    info(f"SDR refused: {denied.code().name} ({denied.details()})")
    still = rpc(acceptance.GetOpportunity, acc.GetOpportunityRequest(opportunity_id=opp_id), ae_tok).opportunity
    expect_eq(still.state, acc.OPPORTUNITY_STATE_PENDING_REVIEW, "state after the SDR's refused accept")

    accepted = rpc(acceptance.AcceptOpportunity, acc.AcceptOpportunityRequest(
        opportunity_id=opp_id, expected_version=still.version, request_id=rid("accept")), ae_tok)
    expect_eq(accepted.opportunity.state, acc.OPPORTUNITY_STATE_ACCEPTED, "state after AcceptOpportunity")
    expect_eq(accepted.opportunity.accepted_by, ae, "accepted_by")
    expect_eq(accepted.opportunity.overridden, False, "overridden")
    expect_eq(accepted.decision.kind, acc.DECISION_KIND_ACCEPT, "decision kind")
    expect_eq(accepted.decision.gate_passed, True, "decision gate_passed")
    expect_eq(accepted.decision.actor.subject, ae, "decision actor")
    info(f"opportunity {acc.OpportunityState.Name(accepted.opportunity.state)} by {ae}")

    # 6. The AE works the deal and closes it won.
    step(6, "ae: RecordActivity, AdvanceOpportunity x2, CloseOpportunity(won)")
    activity = rpc(acceptance.RecordActivity, acc.RecordActivityRequest(
        opportunity_id=opp_id,
        activity=acc.Activity(type=acc.ACTIVITY_TYPE_DEMO, meaningful=True,
                              occur_time=ts(dt.datetime.now(dt.timezone.utc)),  # after the acceptance
                              note="demo with the VP Finance and payments ops"),
        request_id=rid("activity")), ae_tok)
    expect_eq(activity.activity.recorded_by, ae, "activity recorded_by")
    expect(activity.opportunity.HasField("first_meaningful_activity_time"), "first meaningful activity is set")
    state = activity.opportunity.state
    for expected in (acc.OPPORTUNITY_STATE_PROPOSAL, acc.OPPORTUNITY_STATE_NEGOTIATION):
        moved = rpc(acceptance.AdvanceOpportunity, acc.AdvanceOpportunityRequest(
            opportunity_id=opp_id, request_id=rid(f"advance-{expected}")), ae_tok).opportunity
        expect_eq(moved.state, expected, "state after AdvanceOpportunity")
        info(f"{acc.OpportunityState.Name(state)} -> {acc.OpportunityState.Name(moved.state)}")
        state = moved.state
    closed = rpc(acceptance.CloseOpportunity, acc.CloseOpportunityRequest(
        opportunity_id=opp_id, won=True, amount=common.Money(amount_minor=WON_MINOR, currency_code="USD"),
        reason="signed the annual plan after the demo; 6% multi-year discount",
        request_id=rid("close")), ae_tok).opportunity
    expect_eq(closed.state, acc.OPPORTUNITY_STATE_CLOSED_WON, "state after CloseOpportunity")
    expect_eq(closed.closed_amount.amount_minor, WON_MINOR, "closed amount")
    expect_eq(closed.amount.amount_minor, PIPELINE_MINOR, "the expected amount is kept")
    expect(closed.HasField("close_time"), "close_time is set")
    info(f"opportunity {acc.OpportunityState.Name(closed.state)} for {WON_MINOR / 100:,.2f} USD")

    # 7. The funnel shows it all, once each (metrics follows the event streams asynchronously).
    period = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    step(7, f"revops: GetFunnel {first_period}..{period} (polled), GetFunnelHealth")
    want = dict(leads=1, mqls=1, sqls=1, sqos_submitted=1, sqos_accepted=1, sqos_rejected=0, overrides=0,
                won=1, lost=0, pipeline_generated_minor=PIPELINE_MINOR, won_amount_minor=WON_MINOR,
                open_pipeline_minor=0)
    wait = float(os.environ.get("QUALIFY_FUNNEL_WAIT_SECS", "30"))
    deadline = time.monotonic() + wait
    while True:
        funnel = rpc(metrics.GetFunnel, met.GetFunnelRequest(start_period=first_period, end_period=period),
                     revops_tok)
        got = {}
        if len(funnel.rows) == 1:
            got = {k: getattr(funnel.rows[0].figures, k) for k in want}
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect_eq(len(funnel.rows), 1, "GetFunnel rows without group_by")
    f = funnel.rows[0].figures
    for k, v in want.items():
        expect_eq(getattr(f, k), v, f"funnel {k} (after {wait:.0f}s of polling)")
    expect_eq(f.average_deal_size_minor, PIPELINE_MINOR, "funnel average_deal_size_minor")
    expect_eq(f.win_rate, 1.0, "funnel win_rate")
    expect_eq(f.accepted_without_activity, 0, "funnel accepted_without_activity")
    info("funnel: " + ", ".join(f"{k}={getattr(f, k)}" for k in want))

    health = rpc(metrics.GetFunnelHealth, met.GetFunnelHealthRequest(start_period=first_period, end_period=period),
                 revops_tok)
    expect(isinstance(list(health.findings), list), "GetFunnelHealth answers a list")
    for finding in health.findings:
        expect(finding.code != met.FINDING_CODE_UNSPECIFIED, "a finding has a code")
        info(f"finding {met.FindingCode.Name(finding.code)}: {finding.message}")
    info(f"funnel health: {len(health.findings)} finding(s)")

    # 8. Bad input is refused with a BadRequest naming the field, and changes nothing.
    step(8, "service: CreateLead with an empty lead_id -> INVALID_ARGUMENT")
    err = rpc_error(scoring.CreateLead, sc.CreateLeadRequest(
        lead=sc.Lead(lead_id="", account_id=account_id, source=common.LEAD_SOURCE_INBOUND),
        request_id=rid("bad-lead")), service_tok, grpc.StatusCode.INVALID_ARGUMENT, "CreateLead with empty lead_id")
    status = status_details(err)
    expect_eq(status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0], "google.rpc.Status code")
    violations, reasons = [], []
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
        elif any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            ei = error_details_pb2.ErrorInfo()
            any_detail.Unpack(ei)
            reasons.append(f"{ei.reason}@{ei.domain}")
    expect("lead.lead_id" in [v[0] for v in violations], f"BadRequest names lead.lead_id, got {violations}")
    info(f"INVALID_ARGUMENT, ErrorInfo {reasons}, BadRequest {violations}")
    leads = rpc(scoring.ListLeads, sc.ListLeadsRequest(), revops_tok).leads
    expect_eq([l.lead_id for l in leads], [lead_id], "leads of the tenant after the refused CreateLead")

    print("python scenario: OK", flush=True)


if __name__ == "__main__":
    try:
        main()
    except ScenarioError as e:
        print(f"python scenario: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except grpc.RpcError as e:
        try:
            details = describe(status_details(e))
        except ScenarioError:
            details = repr(e.details())
        print(f"python scenario: FAILED: unexpected {e.code().name}: {details}", file=sys.stderr, flush=True)
        sys.exit(1)
