{{- define "chaos-inference.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chaos-inference.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chaos-inference.labels" -}}
{{ include "chaos-inference.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: inference-server
app.kubernetes.io/part-of: chaos-inference
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "chaos-inference.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{- /* Test pods must not match the selector of the Deployment, Service or NetworkPolicy. */ -}}
{{- define "chaos-inference.testLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: chaos-inference
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- /* A probe's handler: GET path on the HTTP port, or grpc.health.v1.Health/Check for service on
the gRPC port, as probes.protocol says. Called with (dict "root" $ "path" "/readyz" "service" "..."). */ -}}
{{- define "chaos-inference.probeHandler" -}}
{{- if eq .root.Values.probes.protocol "grpc" -}}
grpc:
  port: 8001
  service: {{ .service | quote }}
{{- else -}}
httpGet:
  path: {{ .path }}
  port: http
{{- end -}}
{{- end -}}
