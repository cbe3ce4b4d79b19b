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
{{ $s.keys.jwtSecret }}: {{ required "secrets.jwtSecret is required unless secrets.existingSecret is set" $s.jwtSecret | b64enc | quote }}
{{- if $s.redisUrl }}
{{ $s.keys.redisUrl }}: {{ $s.redisUrl | b64enc | quote }}
{{- end }}
{{- end -}}

{{/*
Non-secret environment of one service, the data of its ConfigMap: built as a
map so that config.extraEnv, then services.<name>.extraEnv, override any
computed variable (e.g. QUALIFY_SCORING_URL pointing outside the release).
Call with (dict "root" $ "key" "scoring" "svc" $svc).
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
{{- $_ := set $env (printf "QUALIFY_%s_URL" (upper $callee)) (printf "http://%s:%d" (include "qualify.componentName" (dict "root" $root "key" $callee)) (int64 $target.port)) -}}
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
- name: QUALIFY_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ $s.keys.jwtSecret }}
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
