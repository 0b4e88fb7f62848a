{{/* Names, labels and the environment every Verdict container shares. */}}

{{- define "verdict.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "verdict.labels" -}}
app.kubernetes.io/part-of: verdict
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "name" "assignment") */}}
{{- define "verdict.selectorLabels" -}}
app.kubernetes.io/name: verdict-{{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "verdict.connectionsSecret" -}}
{{- .Values.connections.existingSecret | default (printf "%s-connections" (include "verdict.fullname" .)) -}}
{{- end -}}

{{- define "verdict.keysSecret" -}}
{{- .Values.keys.existingSecret | default (printf "%s-keys" (include "verdict.fullname" .)) -}}
{{- end -}}

{{- define "verdict.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "verdict.fullname" .)) -}}
{{- end -}}

{{/* The gRPC service a component's readiness probe asks for (the standard health service
     reports each service by its full name). */}}
{{- define "verdict.grpcService" -}}
{{- get (dict "assignment" "verdict.v1.AssignmentService" "ingest" "verdict.v1.IngestService" "analysis" "verdict.v1.AnalysisService") . -}}
{{- end -}}

{{/* Environment of every Verdict container: servers, targets, telemetry, TLS. */}}
{{- define "verdict.env" -}}
{{- $fullname := include "verdict.fullname" . -}}
- name: VERDICT_HOST
  value: "0.0.0.0"
- name: VERDICT_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ include "verdict.connectionsSecret" . }}, key: database-url}
- name: VERDICT_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ include "verdict.connectionsSecret" . }}, key: redis-url}
- name: VERDICT_REDIS_NAMESPACE
  value: {{ .Values.redis.namespace | quote }}
- name: VERDICT_ASSIGNMENT_PORT
  value: {{ .Values.services.assignment.port | int | quote }}
- name: VERDICT_INGEST_PORT
  value: {{ .Values.services.ingest.port | int | quote }}
- name: VERDICT_ANALYSIS_PORT
  value: {{ .Values.services.analysis.port | int | quote }}
- name: VERDICT_DASHBOARD_PORT
  value: {{ .Values.services.dashboard.port | int | quote }}
- name: VERDICT_ASSIGNMENT_TARGET
  value: {{ printf "%s-assignment:%d" $fullname (.Values.services.assignment.port | int) | quote }}
- name: VERDICT_INGEST_TARGET
  value: {{ printf "%s-ingest:%d" $fullname (.Values.services.ingest.port | int) | quote }}
- name: VERDICT_ANALYSIS_TARGET
  value: {{ printf "%s-analysis:%d" $fullname (.Values.services.analysis.port | int) | quote }}
- name: VERDICT_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: VERDICT_LOG_FORMAT
  value: json
- name: VERDICT_GRACE_PERIOD_S
  value: {{ .Values.gracePeriodSeconds | int | quote }}
- name: VERDICT_ASSIGNMENT_METRICS_PORT
  value: {{ .Values.telemetry.metricsPort | int | quote }}
- name: VERDICT_INGEST_METRICS_PORT
  value: {{ .Values.telemetry.metricsPort | int | quote }}
- name: VERDICT_ANALYSIS_METRICS_PORT
  value: {{ .Values.telemetry.metricsPort | int | quote }}
- name: VERDICT_TRACE_EXPORTER
  value: {{ .Values.telemetry.traces.exporter | quote }}
{{- if eq .Values.telemetry.traces.exporter "otlp" }}
- name: VERDICT_OTLP_ENDPOINT
  value: {{ required "telemetry.traces.otlpEndpoint is needed with the otlp exporter" .Values.telemetry.traces.otlpEndpoint | quote }}
- name: VERDICT_TRACE_SAMPLE_RATIO
  value: {{ .Values.telemetry.traces.sampleRatio | quote }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: VERDICT_TLS_CERT_FILE
  value: /etc/verdict/tls/tls.crt
- name: VERDICT_TLS_KEY_FILE
  value: /etc/verdict/tls/tls.key
- name: VERDICT_TLS_CA_FILE
  value: /etc/verdict/tls/ca.crt
- name: VERDICT_TLS_SERVER_NAME
  value: {{ .Values.tls.serverName | quote }}
{{- if .Values.tls.mutual }}
- name: VERDICT_TLS_CLIENT_CA_FILE
  value: /etc/verdict/tls/ca.crt
{{- end }}
{{- end }}
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
