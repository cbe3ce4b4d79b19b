// Drives a whole Qualify scenario from JavaScript: @grpc/grpc-js with the contracts in
// ../../proto loaded at run time by @grpc/proto-loader (no generated code to commit).
//
// The same steps as clients/python/scenario.py, under the tenant of the tokens given:
//   1. service  CreateAccount, two CreateContact (economic buyer, champion), CreateLead;
//      verifier RecordContactVerifications (a provider verified both emails; the SDR is refused)
//   2. revops   PublishScorecard, IngestSignals, ScoreLead (contributions add up to the total)
//   3. sdr      AcceptLead, QualifyLead                                   -> lead at SQL
//   4. sdr      SubmitOpportunity (BANT confirmed, buying group, next step) -> PENDING_REVIEW
//   5. ae       EvaluateGate, AcceptOpportunity -> ACCEPTED (the SDR is refused: PERMISSION_DENIED)
//   6. ae       RecordActivity, AdvanceOpportunity x2, CloseOpportunity(won) -> CLOSED_WON
//   7. revops   GetFunnel for the month (polled: metrics ingests asynchronously), GetFunnelHealth
//   8. service  CreateLead with an empty lead_id -> INVALID_ARGUMENT + google.rpc.BadRequest
// The tenant must be fresh: the funnel figures are asserted exactly.
//
// Environment:
//   QUALIFY_TOKEN_SERVICE, QUALIFY_TOKEN_REVOPS, QUALIFY_TOKEN_SDR, QUALIFY_TOKEN_AE,
//   QUALIFY_TOKEN_VERIFIER
//       bearer tokens of one tenant (`qualify token --tenant T --subject S --role R`); the SDR
//       and the AE must be different subjects
//   QUALIFY_SCORING_TARGET, QUALIFY_ACCEPTANCE_TARGET, QUALIFY_METRICS_TARGET
//       host:port, default 127.0.0.1:50051 / :50052 / :50053
//   QUALIFY_PROTO_DIR         the proto root (default ../../proto from this file)
//   QUALIFY_FUNNEL_WAIT_SECS  how long to poll the funnel (default 30)
//
// Messages are plain objects with camelCase fields (proto-loader keepCase: false), enums as
// their names, int64 as decimal strings (longs: String): compare those as strings.

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTO_DIR = process.env.QUALIFY_PROTO_DIR ?? path.resolve(HERE, '../../proto');
const TIMEOUT_MS = 15_000; // per RPC
const PIPELINE_MINOR = 2_400_000; // USD 24,000.00 submitted
const WON_MINOR = 2_250_000; // USD 22,500.00 signed (a discount), so won != pipeline is visible

class ScenarioError extends Error {}

function expect(cond, what) {
  if (!cond) throw new ScenarioError(what);
}

function expectEq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new ScenarioError(`${what}: expected ${e}, got ${a}`);
}

const step = (n, text) => console.log(`[js] step ${n}: ${text}`);
const info = (text) => console.log(`[js]   ${text}`);

function envToken(name) {
  const value = (process.env[name] ?? '').trim();
  if (!value) throw new ScenarioError(`${name} is not set (mint it with \`qualify token ...\`)`);
  return value;
}

/** The token's claims, read without verifying (the server verifies). */
function claims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** A google.protobuf.Timestamp for a Date. */
function ts(date) {
  const ms = date.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

const DAY_MS = 86_400_000;
const fromNow = (ms) => new Date(Date.now() + ms);
const month = (d) => d.toISOString().slice(0, 7); // YYYY-MM, UTC

// google.rpc.Status and the details used here, as in googleapis' google/rpc/*.proto (wire
// compatible; Any is declared locally so nothing needs importing).
const rpcTypes = protobuf.parse(`
  syntax = "proto3";
  package google.rpc;
  message Any { string type_url = 1; bytes value = 2; }
  message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
  message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
  message BadRequest {
    message FieldViolation { string field = 1; string description = 2; }
    repeated FieldViolation field_violations = 1;
  }
`).root;
const Status = rpcTypes.lookupType('google.rpc.Status');
const ErrorInfo = rpcTypes.lookupType('google.rpc.ErrorInfo');
const BadRequest = rpcTypes.lookupType('google.rpc.BadRequest');

/** Decodes the google.rpc.Status of an error from its grpc-status-details-bin trailer. */
function statusDetails(err) {
  const raw = err.metadata?.get('grpc-status-details-bin') ?? [];
  if (raw.length === 0) throw new ScenarioError(`no grpc-status-details-bin trailer on code ${err.code}: ${err.details}`);
  return Status.toObject(Status.decode(raw[0]), { defaults: true });
}

/** google.rpc.Status, one line: its message and each detail it carries. */
function describe(status) {
  const parts = [JSON.stringify(status.message)];
  for (const d of status.details) {
    const type = [BadRequest, ErrorInfo].find((t) => d.typeUrl.endsWith(`/${t.fullName.slice(1)}`));
    parts.push(type ? `${type.name} ${JSON.stringify(type.toObject(type.decode(d.value)))}` : d.typeUrl);
  }
  return parts.join(' ');
}

function loadClients() {
  const files = ['common', 'scoring', 'acceptance', 'metrics'].map((s) => `qualify/${s}/v1/${s}.proto`);
  const definition = protoLoader.loadSync(files, {
    includeDirs: [PROTO_DIR],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const { qualify } = grpc.loadPackageDefinition(definition);
  const creds = grpc.credentials.createInsecure();
  return {
    scoring: new qualify.scoring.v1.LeadScoringService(process.env.QUALIFY_SCORING_TARGET ?? '127.0.0.1:50051', creds),
    acceptance: new qualify.acceptance.v1.OpportunityAcceptanceService(
      process.env.QUALIFY_ACCEPTANCE_TARGET ?? '127.0.0.1:50052', creds),
    metrics: new qualify.metrics.v1.MetricsService(process.env.QUALIFY_METRICS_TARGET ?? '127.0.0.1:50053', creds),
  };
}

/** Calls a unary method with the bearer token; resolves with the response, rejects with the gRPC error. */
function rpc(client, method, request, token) {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    client[method](request, md, { deadline: new Date(Date.now() + TIMEOUT_MS) }, (err, res) =>
      err ? reject(err) : resolve(res));
  });
}

/** Calls and expects a failure with the given status code; returns the error. */
async function rpcError(client, method, request, token, code, what) {
  try {
    await rpc(client, method, request, token);
  } catch (err) {
    if (err.code === undefined) throw err;
    expectEq(err.code, code, `${what}: status code (message: ${JSON.stringify(err.details)})`);
    return err;
  }
  throw new ScenarioError(`${what}: expected status ${code}, the call succeeded`);
}

const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code) ?? String(code);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const serviceTok = envToken('QUALIFY_TOKEN_SERVICE');
  const revopsTok = envToken('QUALIFY_TOKEN_REVOPS');
  const sdrTok = envToken('QUALIFY_TOKEN_SDR');
  const aeTok = envToken('QUALIFY_TOKEN_AE');
  const verifierTok = envToken('QUALIFY_TOKEN_VERIFIER');
  const tenants = new Set([serviceTok, revopsTok, sdrTok, aeTok, verifierTok].map((t) => claims(t).tenant));
  expect(tenants.size === 1, `the five tokens must share one tenant, got ${[...tenants]}`);
  const [tenant] = tenants;
  const sdr = claims(sdrTok).sub;
  const ae = claims(aeTok).sub;
  expect(sdr !== ae, 'the SDR and the AE must be different subjects');

  const { scoring, acceptance, metrics } = loadClients();
  const run = randomUUID().slice(0, 8); // request ids and signal ids are unique per run
  const rid = (name) => `js-${run}-${name}`;
  const now = new Date();
  const firstPeriod = month(now);
  const accountId = 'js-globex';
  const ebId = 'js-globex-eb';
  const champId = 'js-globex-champion';
  const leadId = 'js-lead-1';
  const oppId = 'js-opp-1';
  console.log(`[js] tenant ${tenant}, sdr ${sdr}, ae ${ae}, run ${run}`);

  // 1. The CRM sync (a service account) brings in the account, its people and the lead.
  step(1, 'service: CreateAccount, CreateContact x2, CreateLead');
  const { account } = await rpc(scoring, 'CreateAccount', {
    account: {
      accountId, displayName: 'Globex Logistics', industry: 'SaaS', employeeCount: 85,
      revenueBand: '10m-50m', region: 'emea', segment: 'SEGMENT_SMB',
    },
    requestId: rid('account'),
  }, serviceTok);
  expectEq(account.accountId, accountId, 'account id');
  expectEq(account.segment, 'SEGMENT_SMB', 'account segment');
  expectEq(account.industry, 'saas', 'industry is normalised to lower case');
  expect(account.etag !== '', 'account has an etag');
  info(`account ${account.accountId} (${account.segment})`);

  const verified = ts(new Date(now.getTime() - 4 * DAY_MS));
  for (const [contactId, fullName, title, seniority, buyingRole] of [
    [ebId, 'Priya Raman', 'VP Operations', 'vp', 'BUYING_ROLE_ECONOMIC_BUYER'],
    [champId, 'Tom Becker', 'Director of Fleet Systems', 'director', 'BUYING_ROLE_CHAMPION'],
  ]) {
    const { contact } = await rpc(scoring, 'CreateContact', {
      contact: {
        contactId, accountId, fullName, title, seniority, department: 'operations', buyingRole,
        email: `${contactId}@globex.example`,
      },
      requestId: rid(`contact-${contactId}`),
    }, serviceTok);
    expectEq(contact.buyingRole, buyingRole, `contact ${contactId} buying role`);
    info(`contact ${contactId} (${buyingRole})`);
  }

  // Only a verifier (an enrichment integration) records that a provider verified an email.
  const feed = {
    verifications: [ebId, champId].map((contactId) => ({
      contactId, channel: 'CONTACT_CHANNEL_EMAIL', status: 'VERIFICATION_STATUS_VERIFIED', provider: 'zerobounce',
      verifyTime: verified,
    })),
    requestId: rid('verifications'),
  };
  await rpcError(scoring, 'RecordContactVerifications', feed, sdrTok, grpc.status.PERMISSION_DENIED,
    'RecordContactVerifications by the SDR');
  const recorded = await rpc(scoring, 'RecordContactVerifications', feed, verifierTok);
  expectEq(recorded.results.map((r) => r.outcome).join(','),
    'VERIFICATION_OUTCOME_APPLIED,VERIFICATION_OUTCOME_APPLIED', 'both findings applied');
  expectEq([recorded.appliedCount, recorded.rejectedCount, recorded.notFoundCount, recorded.supersededCount],
    [2, 0, 0, 0], 'feed counts (applied, rejected, not found, superseded)');
  for (const contactId of [ebId, champId]) {
    const { contact } = await rpc(scoring, 'GetContact', { contactId }, serviceTok);
    expectEq(contact.emailStatus, 'VERIFICATION_STATUS_VERIFIED', `contact ${contactId} verified`);
    expectEq(contact.emailVerifyProvider, 'zerobounce', `contact ${contactId} provider`);
    expectEq(contact.emailVerifyTime.seconds, verified.seconds, `contact ${contactId} verify time`);
  }
  info('both emails verified 4 days ago by zerobounce, as the verifier\'s feed recorded (the SDR is refused)');

  const { lead } = await rpc(scoring, 'CreateLead', {
    lead: {
      leadId, accountId, source: 'LEAD_SOURCE_INBOUND', campaign: 'js-logistics-ebook', ownerSdr: sdr,
      contactId: ebId,
    },
    requestId: rid('lead'),
  }, serviceTok);
  expectEq(lead.stage, 'LEAD_STAGE_NEW', "a new lead's stage");
  expectEq(lead.ownerSdr, sdr, 'lead owner');
  info(`lead ${lead.leadId} at ${lead.stage}`);

  // 2. RevOps publishes the SMB scorecard; signals arrive; the lead is scored and explained.
  step(2, 'revops: PublishScorecard, IngestSignals, ScoreLead');
  let published;
  try {
    ({ scorecard: published } = await rpc(scoring, 'PublishScorecard', {
      scorecard: {
        segment: 'SEGMENT_SMB',
        fitRules: [
          { id: 'fit-industry', attribute: 'ATTRIBUTE_INDUSTRY', points: 20, oneOf: { values: ['fintech', 'saas'] } },
          { id: 'fit-size', attribute: 'ATTRIBUTE_EMPLOYEE_COUNT', points: 15, between: { min: '50', max: '500' } },
          { id: 'fit-seniority', attribute: 'ATTRIBUTE_SENIORITY', points: 10, oneOf: { values: ['vp', 'c-level'] } },
        ],
        engagementRules: [
          { id: 'eng-pricing', signalType: 'SIGNAL_TYPE_PRICING_PAGE_VISIT', points: 10, halfLifeDays: 0, cap: 30, windowDays: 90 },
          { id: 'eng-demo', signalType: 'SIGNAL_TYPE_DEMO_REQUEST', points: 25, halfLifeDays: 0, cap: 0, windowDays: 0 },
          { id: 'eng-webinar', signalType: 'SIGNAL_TYPE_WEBINAR_ATTENDED', points: 8, halfLifeDays: 14, cap: 0, windowDays: 60 },
        ],
        mqlThreshold: 50,
        pqlThreshold: 0,
        gradeBands: { fitA: 40, fitB: 25, fitC: 10, engagement1: 40, engagement2: 20, engagement3: 10 },
        framework: 'FRAMEWORK_BANT',
      },
      expectedVersion: '0',
      requestId: rid('scorecard'),
    }, revopsTok));
  } catch (err) {
    if (err.code === undefined) throw err;
    throw new ScenarioError(`PublishScorecard refused: ${codeName(err.code)} ${describe(statusDetails(err))}`);
  }
  expect(Number(published.version) >= 1, `published version is assigned, got ${published.version}`);
  expectEq(published.publishedBy, claims(revopsTok).sub, 'scorecard publishedBy');
  expectEq(published.fitRules.map((r) => r.predicate), ['oneOf', 'between', 'oneOf'], 'fit rule predicates (oneofs)');
  info(`scorecard SMB v${published.version} published by ${published.publishedBy}`);

  const signals = [
    ['SIGNAL_TYPE_PRICING_PAGE_VISIT', fromNow(-2 * DAY_MS), ebId],
    ['SIGNAL_TYPE_PRICING_PAGE_VISIT', fromNow(-1 * DAY_MS), champId],
    ['SIGNAL_TYPE_DEMO_REQUEST', fromNow(-3 * 3_600_000), ebId],
    ['SIGNAL_TYPE_WEBINAR_ATTENDED', fromNow(-10 * DAY_MS), champId],
  ];
  const ingest = await rpc(scoring, 'IngestSignals', {
    signals: signals.map(([type, when, contactId], i) => ({
      signalId: `js-sig-${run}-${i + 1}`, leadId, contactId, type, occurTime: ts(when),
    })),
  }, revopsTok);
  expectEq([ingest.acceptedCount, ingest.duplicateCount, ingest.rejectedCount], [4, 0, 0],
    'IngestSignals accepted/duplicate/rejected');
  expect(ingest.results.every((r) => r.outcome === 'SIGNAL_OUTCOME_ACCEPTED'), 'every signal ACCEPTED');
  const moves = ingest.stageChanges.map((c) => [c.fromStage, c.toStage]);
  info(`4 signals accepted; stage moves: ${JSON.stringify(moves)}`);

  const { score } = await rpc(scoring, 'ScoreLead', { leadId }, revopsTok);
  const parts = Object.fromEntries(score.contributions.map((c) => [c.ruleId, c]));
  info(`score ${score.total} (fit ${score.fit}, engagement ${score.engagement}, grade ${score.grade}, `
    + `recommends ${score.recommendedStage}), contributions ${JSON.stringify(
      Object.fromEntries(score.contributions.map((c) => [c.ruleId, [c.points, c.signalCount]])))}`);
  expectEq(score.contributions.reduce((s, c) => s + c.points, 0), score.total, 'sum of rule contributions vs total');
  expectEq(score.fit + score.engagement, score.total, 'fit + engagement vs total');
  expectEq(score.contributions.filter((c) => c.kind === 'RULE_KIND_FIT').reduce((s, c) => s + c.points, 0),
    score.fit, 'sum of fit contributions vs fit');
  expectEq(score.scorecardVersion, published.version, "score's scorecard version");
  // Fit: saas (20) + 85 employees (15) + the contact is a vp (10).
  expectEq(score.fit, 45, 'fit score');
  expectEq([parts['eng-pricing']?.points, parts['eng-pricing']?.signalCount], [20, 2], 'eng-pricing');
  expectEq([parts['eng-demo']?.points, parts['eng-demo']?.signalCount], [25, 1], 'eng-demo');
  // 8 points halving every 14 days, 10 days old: 8 * 0.5^(10/14) = 4.9 -> 5 (or 4 if truncated).
  expect([4, 5].includes(parts['eng-webinar']?.points), `eng-webinar decayed to 4 or 5, got ${parts['eng-webinar']?.points}`);
  expectEq(score.grade, 'A1', 'grade (fit 45 >= 40, engagement >= 40)');
  expectEq(score.recommendedStage, 'LEAD_STAGE_MQL', 'recommended stage (total >= 50)');
  expectEq(moves, [['LEAD_STAGE_NEW', 'LEAD_STAGE_MQL']], 'ingestion moved the lead NEW -> MQL');

  // 3. The SDR works the lead.
  step(3, 'sdr: AcceptLead, QualifyLead');
  const acceptedLead = await rpc(scoring, 'AcceptLead', { leadId, requestId: rid('accept-lead') }, sdrTok);
  expectEq(acceptedLead.lead.stage, 'LEAD_STAGE_SAL', 'stage after AcceptLead');
  expectEq(acceptedLead.stageChange.actor.subject, sdr, 'AcceptLead actor');
  const qualified = await rpc(scoring, 'QualifyLead', {
    leadId,
    discoveryCallHeld: true,
    painStatement: 'Dispatch plans are rebuilt by hand every morning; late deliveries cost us two accounts.',
    requestId: rid('qualify-lead'),
  }, sdrTok);
  expectEq(qualified.lead.stage, 'LEAD_STAGE_SQL', 'stage after QualifyLead');
  expectEq(qualified.stageChange.fromStage, 'LEAD_STAGE_SAL', 'QualifyLead from stage');
  info(`lead ${leadId}: MQL -> SAL -> ${qualified.lead.stage}`);

  // 4. The SDR submits the opportunity to the SQO gate.
  step(4, 'sdr: SubmitOpportunity');
  const evidence = ['CRITERION_BUDGET', 'CRITERION_AUTHORITY', 'CRITERION_NEED', 'CRITERION_TIMELINE'].map((criterion) => ({
    criterion, status: 'EVIDENCE_STATUS_CONFIRMED', note: `confirmed on the discovery call (${criterion})`, confirmedBy: sdr,
  }));
  const stakeholders = [
    { contactId: ebId, role: 'BUYING_ROLE_ECONOMIC_BUYER' },
    { contactId: champId, role: 'BUYING_ROLE_CHAMPION' },
  ];
  const nextStep = { description: 'product demo with operations', scheduledTime: ts(fromNow(3 * DAY_MS)), type: 'ACTIVITY_TYPE_DEMO' };
  const submitted = await rpc(acceptance, 'SubmitOpportunity', {
    opportunity: {
      opportunityId: oppId, leadId,
      amount: { amountMinor: String(PIPELINE_MINOR), currencyCode: 'USD' },
      expectedCloseTime: ts(fromNow(60 * DAY_MS)), segment: 'SEGMENT_SMB',
      evidence, stakeholders, competitors: ['RouteRight'], nextStep, team: 'js-emea-smb',
    },
    requestId: rid('submit'),
  }, sdrTok);
  const opp = submitted.opportunity;
  expectEq(opp.state, 'OPPORTUNITY_STATE_PENDING_REVIEW', 'state after SubmitOpportunity');
  expectEq(opp.submittedBy, sdr, 'submittedBy');
  expectEq(opp.framework, 'FRAMEWORK_BANT', 'framework in force');
  expectEq(opp.amount.amountMinor, String(PIPELINE_MINOR), 'amount (int64 as a string)');
  expectEq(opp.leadSnapshot.stage, 'LEAD_STAGE_SQL', 'snapshot stage');
  expectEq(opp.leadSnapshot.score, score.total, 'snapshot score');
  expectEq(opp.leadSnapshot.scorecardVersion, published.version, 'snapshot scorecard version');
  expectEq(opp.leadSnapshot.source, 'LEAD_SOURCE_INBOUND', 'snapshot source');
  expectEq(opp.leadSnapshot.campaign, 'js-logistics-ebook', 'snapshot campaign');
  expectEq(Object.fromEntries(opp.stakeholders.map((s) => [s.contactId, s.verifyTime?.seconds])),
    { [ebId]: verified.seconds, [champId]: verified.seconds }, 'stakeholder verify times come from lead scoring');
  const failed = submitted.gate.checks.filter((c) => !c.passed).map((c) => c.code);
  expect(submitted.gate.passed && failed.length === 0, `the gate passes at submission, failed checks: ${failed}`);
  info(`opportunity ${oppId} ${opp.state} v${opp.version}, snapshot score ${opp.leadSnapshot.score}, `
    + `gate passed (${submitted.gate.checks.length} checks)`);

  // 5. The AE reviews the gate and accepts; the SDR cannot.
  step(5, 'ae: EvaluateGate, AcceptOpportunity (and the SDR is refused)');
  const gate = await rpc(acceptance, 'EvaluateGate', {
    candidate: {
      segment: 'SEGMENT_SMB', evidence, nextStep, score: score.total,
      stakeholders: stakeholders.map((s) => ({ ...s, verifyTime: verified })),
    },
  }, aeTok);
  const codes = gate.checks.map((c) => c.code);
  expect(gate.passed, `EvaluateGate passes: ${JSON.stringify(gate.checks.map((c) => [c.code, c.detail]))}`);
  expect(gate.checks.every((c) => c.passed), 'every gate check passed');
  expect(codes.includes('GATE_CHECK_CODE_ECONOMIC_BUYER_MISSING') && codes.includes('GATE_CHECK_CODE_CHAMPION_MISSING'),
    `the SMB default policy checks the buying group, got ${codes}`);
  info(`gate passed: ${gate.checks.length} checks, policy v${gate.policyVersion}`);

  const denied = await rpcError(acceptance, 'AcceptOpportunity', { opportunityId: oppId, requestId: rid('accept-by-sdr') },
    sdrTok, grpc.status.PERMISSION_DENIED, 'AcceptOpportunity by the SDR');
  info(`SDR refused: ${codeName(denied.code)} (${denied.details})`);
  const { opportunity: still } = await rpc(acceptance, 'GetOpportunity', { opportunityId: oppId }, aeTok);
  expectEq(still.state, 'OPPORTUNITY_STATE_PENDING_REVIEW', "state after the SDR's refused accept");

  const accepted = await rpc(acceptance, 'AcceptOpportunity', {
    opportunityId: oppId, expectedVersion: still.version, requestId: rid('accept'),
  }, aeTok);
  expectEq(accepted.opportunity.state, 'OPPORTUNITY_STATE_ACCEPTED', 'state after AcceptOpportunity');
  expectEq(accepted.opportunity.acceptedBy, ae, 'acceptedBy');
  expectEq(accepted.opportunity.overridden, false, 'overridden');
  expectEq(accepted.decision.kind, 'DECISION_KIND_ACCEPT', 'decision kind');
  expectEq(accepted.decision.gatePassed, true, 'decision gatePassed');
  expectEq(accepted.decision.actor.subject, ae, 'decision actor');
  info(`opportunity ${accepted.opportunity.state} by ${ae}`);

  // 6. The AE works the deal and closes it won.
  step(6, 'ae: RecordActivity, AdvanceOpportunity x2, CloseOpportunity(won)');
  const activity = await rpc(acceptance, 'RecordActivity', {
    opportunityId: oppId,
    activity: { type: 'ACTIVITY_TYPE_DEMO', meaningful: true, occurTime: ts(new Date()), note: 'demo with the VP Operations' },
    requestId: rid('activity'),
  }, aeTok);
  expectEq(activity.activity.recordedBy, ae, 'activity recordedBy');
  expect(activity.opportunity.firstMeaningfulActivityTime != null, 'first meaningful activity is set');
  let state = activity.opportunity.state;
  for (const expected of ['OPPORTUNITY_STATE_PROPOSAL', 'OPPORTUNITY_STATE_NEGOTIATION']) {
    const { opportunity: moved } = await rpc(acceptance, 'AdvanceOpportunity', {
      opportunityId: oppId, requestId: rid(`advance-${expected}`),
    }, aeTok);
    expectEq(moved.state, expected, 'state after AdvanceOpportunity');
    info(`${state} -> ${moved.state}`);
    state = moved.state;
  }
  const { opportunity: closed } = await rpc(acceptance, 'CloseOpportunity', {
    opportunityId: oppId, won: true, amount: { amountMinor: String(WON_MINOR), currencyCode: 'USD' },
    reason: 'signed the annual plan after the demo; 6% multi-year discount', requestId: rid('close'),
  }, aeTok);
  expectEq(closed.state, 'OPPORTUNITY_STATE_CLOSED_WON', 'state after CloseOpportunity');
  expectEq(closed.closedAmount?.amountMinor, String(WON_MINOR), 'closed amount');
  expectEq(closed.amount.amountMinor, String(PIPELINE_MINOR), 'the expected amount is kept');
  expect(closed.closeTime != null, 'closeTime is set');
  info(`opportunity ${closed.state} for ${(WON_MINOR / 100).toFixed(2)} USD`);

  // 7. The funnel shows it all, once each (metrics follows the event streams asynchronously).
  const period = month(new Date());
  step(7, `revops: GetFunnel ${firstPeriod}..${period} (polled), GetFunnelHealth`);
  const want = {
    leads: '1', mqls: '1', sqls: '1', sqosSubmitted: '1', sqosAccepted: '1', sqosRejected: '0', overrides: '0',
    won: '1', lost: '0', pipelineGeneratedMinor: String(PIPELINE_MINOR), wonAmountMinor: String(WON_MINOR),
    openPipelineMinor: '0',
  };
  const waitSecs = Number(process.env.QUALIFY_FUNNEL_WAIT_SECS ?? '30');
  const deadline = Date.now() + waitSecs * 1000;
  const pick = (f) => Object.fromEntries(Object.keys(want).map((k) => [k, f[k]]));
  let funnel;
  for (;;) {
    funnel = await rpc(metrics, 'GetFunnel', { startPeriod: firstPeriod, endPeriod: period }, revopsTok);
    const got = funnel.rows.length === 1 ? pick(funnel.rows[0].figures) : {};
    if (JSON.stringify(got) === JSON.stringify(want) || Date.now() > deadline) break;
    await sleep(500);
  }
  expectEq(funnel.rows.length, 1, 'GetFunnel rows without groupBy');
  const f = funnel.rows[0].figures;
  for (const [k, v] of Object.entries(want)) expectEq(f[k], v, `funnel ${k} (after ${waitSecs}s of polling)`);
  expectEq(f.averageDealSizeMinor, String(PIPELINE_MINOR), 'funnel averageDealSizeMinor');
  expectEq(f.winRate, 1, 'funnel winRate');
  expectEq(f.acceptedWithoutActivity, '0', 'funnel acceptedWithoutActivity');
  info(`funnel: ${Object.keys(want).map((k) => `${k}=${f[k]}`).join(', ')}`);

  const health = await rpc(metrics, 'GetFunnelHealth', { startPeriod: firstPeriod, endPeriod: period }, revopsTok);
  expect(Array.isArray(health.findings), 'GetFunnelHealth answers a list');
  for (const finding of health.findings) {
    expect(finding.code !== 'FINDING_CODE_UNSPECIFIED', 'a finding has a code');
    info(`finding ${finding.code}: ${finding.message}`);
  }
  info(`funnel health: ${health.findings.length} finding(s)`);

  // 8. Bad input is refused with a BadRequest naming the field, and changes nothing.
  step(8, 'service: CreateLead with an empty leadId -> INVALID_ARGUMENT');
  const err = await rpcError(scoring, 'CreateLead', {
    lead: { leadId: '', accountId, source: 'LEAD_SOURCE_INBOUND' }, requestId: rid('bad-lead'),
  }, serviceTok, grpc.status.INVALID_ARGUMENT, 'CreateLead with empty leadId');
  expectEq(err.code, 3, 'status code number');
  expect(err.details.includes('lead_id'), `the message names the field: ${JSON.stringify(err.details)}`);
  const status = statusDetails(err);
  expectEq(status.code, 3, 'google.rpc.Status code');
  const violations = [];
  const reasons = [];
  for (const d of status.details) {
    if (d.typeUrl.endsWith('/google.rpc.BadRequest')) {
      for (const v of BadRequest.decode(d.value).fieldViolations) violations.push([v.field, v.description]);
    } else if (d.typeUrl.endsWith('/google.rpc.ErrorInfo')) {
      const ei = ErrorInfo.decode(d.value);
      reasons.push(`${ei.reason}@${ei.domain}`);
    }
  }
  expect(violations.some(([field]) => field === 'lead.lead_id'), `BadRequest names lead.lead_id, got ${JSON.stringify(violations)}`);
  info(`INVALID_ARGUMENT (${JSON.stringify(err.details)}), ErrorInfo ${JSON.stringify(reasons)}, BadRequest ${JSON.stringify(violations)}`);
  const { leads } = await rpc(scoring, 'ListLeads', {}, revopsTok);
  expectEq(leads.map((l) => l.leadId), [leadId], 'leads of the tenant after the refused CreateLead');

  for (const c of [scoring, acceptance, metrics]) c.close();
  console.log('js scenario: OK');
}

main().catch((e) => {
  if (e instanceof ScenarioError) {
    console.error(`js scenario: FAILED: ${e.message}`);
  } else if (e && e.code !== undefined && e.details !== undefined) {
    let details = JSON.stringify(e.details);
    try { details = describe(statusDetails(e)); } catch { /* no details trailer */ }
    console.error(`js scenario: FAILED: unexpected ${codeName(e.code)}: ${details}`);
  } else {
    console.error('js scenario: FAILED:', e);
  }
  process.exit(1);
});
