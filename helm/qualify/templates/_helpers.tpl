{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "qualify.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Release-wide resource name prefix, at most 52 characters so that
"<fullname>-<service>-migrate" stays within 63.
*/}}
{{- define "qualify.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of one service's resources. Call with (dict "root" $ "key" "scoring").
*/}}
{{- define "qualify.componentName" -}}
{{- printf "%s-%s" (include "qualify.fullname" .root) .key -}}
{{- end -}}

{{/*
"name-version" of the chart for the helm.sh/chart label.
*/}}
{{- define "qualify.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels shared by every resource of the release. Call with the root context.
*/}}
{{- define "qualify.commonLabels" -}}
helm.sh/chart: {{ include "qualify.chart" . }}
app.kubernetes.io/name: {{ include "qualify.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: qualify
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Labels of one service's resources. Call with (dict "root" $ "key" "scoring").
*/}}
{{- define "qualify.labels" -}}
{{ include "qualify.commonLabels" .root }}
app.kubernetes.io/component: {{ .key }}
{{- end -}}

{{/*
Selector labels of one service's pods (immutable: no version in them).
Call with (dict "root" $ "key" "scoring").
*/}}
{{- define "qualify.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qualify.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .key }}
{{- end -}}

{{/*
Global settings with one service's overrides applied key by key (a `false`
override wins, unlike mergeOverwrite). Call with (dict "global" G "override" O);
returns YAML for fromYaml.
*/}}
{{- define "qualify.merged" -}}
{{- $out := deepCopy .global -}}
{{- range $k, $v := (.override | default dict) -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Image reference of one service. Call with (dict "root" $ "svc" $svc).
*/}}
{{- define "qualify.image" -}}
{{- $img := include "qualify.merged" (dict "global" .root.Values.image "override" .svc.image) | fromYaml -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{- define "qualify.imagePullPolicy" -}}
{{- $img := include "qualify.merged" (dict "global" .root.Values.image "override" .svc.image) | fromYaml -}}
{{- $img.pullPolicy -}}
{{- end -}}

{{/*
Name of the Secret holding the database URL, Redis URL and JWT key.
*/}}
{{- define "qualify.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "qualify.fullname" . -}}
{{- end -}}
{{- end -}}

{{/*
Name of the copy of the chart's Secret that exists for the migration hooks
(they run before the release's own resources are created).
*/}}
{{- define "qualify.migrationSecretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-migrate" (include "qualify.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Data of the chart-created Secret (plain values; the template encodes them).
*/}}
{{- define "qualify.secretData" -}}
{{- $s := .Values.secrets -}}
{{ $s.keys.databaseUrl }}: {{ required "secrets.databaseUrl is required unless secrets.existingSecret is set" $s.databaseUrl | b64enc | quote }}
{{- if include "qualify.jwtRequired" . }}
{{ $s.keys.jwtSecret }}: {{ required "secrets.jwtSecret is required unless secrets.existingSecret is set (or identity issuers replace HS256: identity.allowHs256 false)" $s.jwtSecret | b64enc | quote }}
{{- else if $s.jwtSecret }}
{{ $s.keys.jwtSecret }}: {{ $s.jwtSecret | b64enc | quote }}
{{- end }}
{{- if $s.redisUrl }}
{{ $s.keys.redisUrl }}: {{ $s.redisUrl | b64enc | quote }}
{{- end }}
{{- end -}}

{{/*
Non-secret environment of one service, the data of its ConfigMap: built as a
map so that config.extraEnv, then services.<name>.extraEnv, override any
computed variable (e.g. QUALIFY_SCORING_URL pointing outside the release).
Call with (dict "root" $ "key" "scoring" "svc" $svc), plus "job" true for a
migration Job (no identity, token or TLS files).
*/}}
{{- define "qualify.configData" -}}
{{- $root := .root -}}
{{- $cfg := $root.Values.config -}}
{{- $env := dict
  "QUALIFY_LISTEN_ADDR" (printf "0.0.0.0:%d" (int64 .svc.port))
  "QUALIFY_DATABASE_SCHEMA" .svc.databaseSchema
  "QUALIFY_DATABASE_MAX_CONNECTIONS" ((.svc.databaseMaxConnections | default $cfg.databaseMaxConnections) | int64 | toString)
  "QUALIFY_RUN_MIGRATIONS" "false"
  "QUALIFY_DRAIN_GRACE_SECS" ($cfg.drainGraceSecs | int64 | toString)
  "QUALIFY_MAX_MESSAGE_BYTES" ($cfg.maxMessageBytes | int64 | toString)
  "QUALIFY_LOG_FORMAT" $cfg.logFormat
  "QUALIFY_REQUEST_TIMEOUT_MS" ($cfg.requestTimeoutMs | int64 | toString)
  "QUALIFY_MAX_CONCURRENT_REQUESTS" ($cfg.maxConcurrentRequests | int64 | toString)
  "QUALIFY_TENANT_RATE_LIMIT" ($cfg.tenantRateLimit | int64 | toString)
  "QUALIFY_INGEST_CONCURRENCY" ($cfg.ingestConcurrency | int64 | toString)
  "QUALIFY_INGEST_WAIT_MS" ($cfg.ingestWaitMs | int64 | toString)
  "QUALIFY_OUTBOX_RETENTION_DAYS" ($cfg.outboxRetentionDays | int64 | toString)
  "QUALIFY_SIGNAL_RETENTION_DAYS" ($cfg.signalRetentionDays | int64 | toString)
  "QUALIFY_METRICS_ADDR" (ternary (printf "0.0.0.0:%d" (int64 $root.Values.metrics.port)) "off" $root.Values.metrics.enabled)
-}}
{{- range $callee := .svc.calls -}}
{{- $target := index $root.Values.services $callee -}}
{{- $host := include "qualify.componentName" (dict "root" $root "key" $callee) -}}
{{- if $root.Values.tls.enabled -}}
{{- /* A name the certificate covers (see qualify.dnsNames). */ -}}
{{- $_ := set $env (printf "QUALIFY_%s_URL" (upper $callee)) (printf "https://%s.%s.svc:%d" $host $root.Release.Namespace (int64 $target.port)) -}}
{{- else -}}
{{- $_ := set $env (printf "QUALIFY_%s_URL" (upper $callee)) (printf "http://%s:%d" $host (int64 $target.port)) -}}
{{- end -}}
{{- end -}}
{{- /* Files mounted by the Deployments only (the migration Jobs neither serve
nor call anyone, and run before the identity ConfigMap exists). */ -}}
{{- if not .job -}}
{{- if include "qualify.identityEnabled" $root -}}
{{- $_ := set $env "QUALIFY_IDENTITY_FILE" (include "qualify.identityPath" $root) -}}
{{- end -}}
{{- if $root.Values.identity.workload.enabled -}}
{{- $_ := set $env "QUALIFY_SERVICE_TOKEN_FILE" (include "qualify.serviceTokenPath" $root) -}}
{{- end -}}
{{- if $root.Values.tls.enabled -}}
{{- $_ := set $env "QUALIFY_TLS_CERT_FILE" (printf "%s/tls.crt" (include "qualify.tlsDir" $root)) -}}
{{- $_ := set $env "QUALIFY_TLS_KEY_FILE" (printf "%s/tls.key" (include "qualify.tlsDir" $root)) -}}
{{- $_ := set $env "QUALIFY_TLS_CA_FILE" (printf "%s/ca.crt" (include "qualify.tlsDir" $root)) -}}
{{- $_ := set $env "QUALIFY_HEALTH_ADDR" (printf "0.0.0.0:%d" (int64 $root.Values.tls.healthPort)) -}}
{{- if $root.Values.tls.requireClientCert -}}
{{- $_ := set $env "QUALIFY_TLS_CLIENT_CA_FILE" (printf "%s/ca.crt" (include "qualify.tlsDir" $root)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $cfg.corsOrigins -}}
{{- $_ := set $env "QUALIFY_CORS_ORIGINS" $cfg.corsOrigins -}}
{{- end -}}
{{- if $cfg.otelExporterOtlpEndpoint -}}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" $cfg.otelExporterOtlpEndpoint -}}
{{- $_ := set $env "OTEL_SERVICE_NAME" .svc.binary -}}
{{- end -}}
{{- range $k, $v := $cfg.extraEnv -}}
{{- $_ := set $env $k $v -}}
{{- end -}}
{{- range $k, $v := .svc.extraEnv -}}
{{- $_ := set $env $k $v -}}
{{- end -}}
{{- range $k, $v := $env }}
{{ $k }}: {{ $v | quote }}
{{- end -}}
{{- end -}}

{{/*
Environment variables read from the Secret. Call with (dict "root" $ "svc" $svc
"secretName" NAME).
*/}}
{{- define "qualify.secretEnv" -}}
{{- $s := .root.Values.secrets -}}
- name: QUALIFY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ $s.keys.databaseUrl }}
{{- if include "qualify.jwtRequired" .root }}
- name: QUALIFY_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ $s.keys.jwtSecret }}
{{- end }}
{{- if .svc.useRedis }}
- name: QUALIFY_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ $s.keys.redisUrl }}
      optional: true
{{- end }}
{{- end -}}

{{/*
Hardened security contexts, shared by the Deployments and the migration Jobs.
*/}}
{{- define "qualify.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "qualify.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}


{{/*
"true" when the services get an identity file: issuers listed, or the
cluster's own workload issuer. Call with the root context.
*/}}
{{- define "qualify.identityEnabled" -}}
{{- if or .Values.identity.issuers .Values.identity.workload.enabled -}}true{{- end -}}
{{- end -}}

{{/*
"true" when QUALIFY_JWT_SECRET is needed: no identity file, or one that still
accepts HS256 tokens. Call with the root context.
*/}}
{{- define "qualify.jwtRequired" -}}
{{- if or (not (include "qualify.identityEnabled" .)) .Values.identity.allowHs256 -}}true{{- end -}}
{{- end -}}

{{- define "qualify.identityConfigMapName" -}}
{{- printf "%s-identity" (include "qualify.fullname" .) -}}
{{- end -}}

{{- define "qualify.identityPath" -}}/etc/qualify/identity/identity.yaml{{- end -}}
{{- define "qualify.serviceTokenPath" -}}/var/run/secrets/qualify/token{{- end -}}
{{- define "qualify.kubeApiDir" -}}/var/run/secrets/kubernetes.io/serviceaccount{{- end -}}
{{- define "qualify.tlsDir" -}}/etc/qualify/tls{{- end -}}

{{/*
The identity file (QUALIFY_IDENTITY_FILE). identity.issuers are copied as
they are; with identity.workload.enabled a workload issuer "kubernetes" maps
the chart's own ServiceAccounts to every tenant and qualify-system (so the
services may call each other), then identity.workload.serviceAccounts. Rules
the JSON schema cannot express are checked here. Call with the root context.
*/}}
{{- define "qualify.identityFile" -}}
{{- $root := . -}}
{{- $id := .Values.identity -}}
{{- if gt (int64 $id.minRefreshSecs) (int64 $id.refreshSecs) -}}
{{- fail "identity.minRefreshSecs must not be longer than identity.refreshSecs" -}}
{{- end -}}
{{- $issuers := list -}}
{{- $names := dict -}}
{{- range $id.issuers -}}
{{- if hasKey $names .name -}}
{{- fail (printf "identity.issuers: the name %q is used twice" .name) -}}
{{- end -}}
{{- $_ := set $names .name true -}}
{{- $issuers = append $issuers . -}}
{{- end -}}
{{- with $id.workload -}}
{{- if .enabled -}}
{{- if hasKey $names "kubernetes" -}}
{{- fail "identity.issuers: the name \"kubernetes\" is the chart's workload issuer (identity.workload); rename yours" -}}
{{- end -}}
{{- $accounts := list -}}
{{- range $key, $svc := $root.Values.services -}}
{{- if $svc.enabled -}}
{{- $sa := printf "%s/%s" $root.Release.Namespace (include "qualify.componentName" (dict "root" $root "key" $key)) -}}
{{- $accounts = append $accounts (dict "service_account" $sa "tenants" (list "*" "qualify-system")) -}}
{{- end -}}
{{- end -}}
{{- range .serviceAccounts -}}
{{- $accounts = append $accounts . -}}
{{- end -}}
{{- $issuers = append $issuers (dict
  "name" "kubernetes"
  "kind" "workload"
  "issuer" .issuer
  "audience" .audience
  "jwks_uri" .jwksUri
  "ca_file" (printf "%s/ca.crt" (include "qualify.kubeApiDir" $root))
  "token_file" (printf "%s/token" (include "qualify.kubeApiDir" $root))
  "service_accounts" $accounts) -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict
  "allow_hs256" $id.allowHs256
  "refresh_secs" (int64 $id.refreshSecs)
  "min_refresh_secs" (int64 $id.minRefreshSecs)
  "issuers" $issuers) -}}
{{- end -}}

{{/*
Settings that only make sense together, checked once per render.
*/}}
{{- define "qualify.validate" -}}
{{- if and (include "qualify.identityEnabled" .) (not .Values.identity.allowHs256) (not .Values.identity.workload.enabled) -}}
{{- range $key, $svc := .Values.services -}}
{{- if and $svc.enabled $svc.calls -}}
{{- fail (printf "identity: with issuers and allowHs256 false, %s calls %s with the pod's service-account token: set identity.workload.enabled (or identity.allowHs256)" $key (join ", " $svc.calls)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.enabled) -}}
{{- fail "tls.certManager.enabled needs tls.enabled" -}}
{{- end -}}
{{- if and .Values.tls.requireClientCert (not .Values.tls.enabled) -}}
{{- fail "tls.requireClientCert needs tls.enabled" -}}
{{- end -}}
{{- end -}}

{{/*
Name of the kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt).
*/}}
{{- define "qualify.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "qualify.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{/*
DNS names of every enabled service, as a YAML list: what the certificate must
cover (QUALIFY_<NAME>_URL uses <name>.<namespace>.svc).
*/}}
{{- define "qualify.dnsNames" -}}
{{- $root := . -}}
{{- range $key, $svc := .Values.services }}
{{- if $svc.enabled }}
{{- $name := include "qualify.componentName" (dict "root" $root "key" $key) }}
- {{ $name }}
- {{ $name }}.{{ $root.Release.Namespace }}
- {{ $name }}.{{ $root.Release.Namespace }}.svc
- {{ $name }}.{{ $root.Release.Namespace }}.svc.cluster.local
{{- end }}
{{- end }}
{{- end -}}
