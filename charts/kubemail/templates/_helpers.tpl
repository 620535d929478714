{{/* Names and labels shared by the chart's templates. */}}

{{- define "kubemail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' base name: the release name, plus the chart name unless it already has it. */}}
{{- define "kubemail.fullname" -}}
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

{{- define "kubemail.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. The component label keeps the operator's pods apart from the mail server pods
the operator creates, which carry the same app.kubernetes.io/name with component "mailserver".
*/}}
{{- define "kubemail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubemail.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kubemail.labels" -}}
helm.sh/chart: {{ include "kubemail.chart" . }}
{{ include "kubemail.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubemail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubemail.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image the operator runs. The operator passes the same reference to the mail servers
(KUBEMAIL_IMAGE), so both always run one build.
*/}}
{{- define "kubemail.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The operator's rules, generated from the +kubebuilder:rbac markers by `make manifests`. */}}
{{- define "kubemail.managerRules" -}}
{{ .Files.Get "files/manager-rules.yaml" }}
{{- end }}
