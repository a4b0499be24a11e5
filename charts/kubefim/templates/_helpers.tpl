{{/* A map of labels as a selector string: k1=v1,k2=v2 (sorted by key). */}}
{{- define "kubefim.selectorString" -}}
{{- $terms := list -}}
{{- range $key, $value := . -}}
{{- $terms = append $terms (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $terms -}}
{{- end }}

{{- define "kubefim.labels" -}}
app.kubernetes.io/name: kubefim
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubefim.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kubefim.operatorSelector" -}}
app.kubernetes.io/name: kubefim
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubefim.agentSelector" -}}
app.kubernetes.io/name: kubefim
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "kubefim.agentServiceAccount" -}}kubefim-agent{{- end -}}
{{- define "kubefim.operatorServiceAccount" -}}kubefim-operator{{- end -}}
