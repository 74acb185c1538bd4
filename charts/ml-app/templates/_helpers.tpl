{{- define "ml-app.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ml-app.selector" -}}
app.kubernetes.io/name: ml-app
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ml-app.labels" -}}
{{ include "ml-app.selector" . }}
app.kubernetes.io/part-of: cd4ml
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- with .Values.model.version }}
cd4ml.dev/model-version: {{ . | quote }}
{{- end }}
{{- with .Values.pipelineLabel }}
cd4ml.dev/pipeline-label: {{ . | quote }}
{{- end }}
{{- end -}}
