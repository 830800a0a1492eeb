{{/* Names, labels and shared pieces of the Ballast chart. */}}

{{- define "ballast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ballast.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Object names, one definition each, so that flags and RBAC resourceNames agree. */}}
{{- define "ballast.operator.name" -}}{{ include "ballast.fullname" . | trunc 54 | trimSuffix "-" }}-operator{{- end }}
{{- define "ballast.scheduler.name" -}}{{ include "ballast.fullname" . | trunc 53 | trimSuffix "-" }}-scheduler{{- end }}
{{- define "ballast.agent.name" -}}{{ include "ballast.fullname" . | trunc 57 | trimSuffix "-" }}-agent{{- end }}
{{- define "ballast.webhook.service" -}}{{ include "ballast.fullname" . | trunc 55 | trimSuffix "-" }}-webhook{{- end }}
{{- define "ballast.webhook.secret" -}}{{ include "ballast.fullname" . | trunc 51 | trimSuffix "-" }}-webhook-tls{{- end }}
{{- define "ballast.webhook.config" -}}{{ include "ballast.fullname" . }}{{- end }}
{{- define "ballast.peering.name" -}}{{ include "ballast.fullname" . }}{{- end }}
{{- define "ballast.lease.name" -}}{{ include "ballast.scheduler.name" . }}{{- end }}
{{- define "ballast.agent.namespace" -}}{{ .Values.agent.namespace | default .Release.Namespace }}{{- end }}

{{- define "ballast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. The chart version is here, never in selectors. */}}
{{- define "ballast.labels" -}}
helm.sh/chart: {{ include "ballast.chart" . }}
app.kubernetes.io/name: {{ include "ballast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ballast
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: stable across upgrades (no version). */}}
{{- define "ballast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ballast.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ballast.componentLabels" -}}
{{ include "ballast.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ballast.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Pod security for operator and scheduler: the `restricted` Pod Security Standard. */}}
{{- define "ballast.restrictedPodSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsUser }}
fsGroup: {{ .Values.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ballast.restrictedContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Spread replicas of one component across nodes unless the user set an affinity. */}}
{{- define "ballast.affinity" -}}
{{- if .values.affinity }}
{{- toYaml .values.affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "ballast.selectorLabels" (dict "root" .root "component" .component) | nindent 12 }}
{{- end }}
{{- end }}

{{/* Checks that stop a release which could not work. */}}
{{- define "ballast.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.peering.enabled) }}
{{- fail "operator.replicas > 1 needs operator.peering.enabled: replicas would all act at once" }}
{{- end }}
{{- if and (gt (int .Values.scheduler.replicas) 1) (not .Values.scheduler.leaderElection.enabled) }}
{{- fail "scheduler.replicas > 1 needs scheduler.leaderElection.enabled: replicas would all bind at once" }}
{{- end }}
{{- if and .Values.webhook.certManager.enabled .Values.webhook.url }}
{{- fail "webhook.url cannot be used with webhook.certManager: cert-manager issues for the Service's names" }}
{{- end }}
{{- end }}

{{/* Pieces of the webhook configurations (templates/webhook.yaml). */}}
{{- define "ballast.webhook.clientConfig" -}}
{{- if .root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path }}
{{- else }}
service:
  namespace: {{ .root.Release.Namespace }}
  name: {{ include "ballast.webhook.service" .root }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- end }}
{{- define "ballast.webhook.common" -}}
failurePolicy: Ignore
matchPolicy: Equivalent
sideEffects: None
timeoutSeconds: 5
admissionReviewVersions: ["v1"]
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ toJson (list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace | uniq) }}
  {{- with .Values.webhook.namespaceLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
