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

{{/* The release's name for what it owns: the release name, prefixed with the chart's name
unless it holds it already (release "kubefim" gives "kubefim", release "prod" "prod-kubefim"). */}}
{{- define "kubefim.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name -}}
{{- end -}}
{{- end -}}

{{/* The name of a cluster-scoped object: <fullname>-<role>.<release namespace>, such as
kubefim-agent.kubefim-system. Release names and namespaces hold no dot, and Helm keeps release
names unique within a namespace, so two releases never make objects of the same name.
Call with (dict "root" $ "role" "agent"). */}}
{{- define "kubefim.clusterName" -}}
{{- printf "%s-%s.%s" (include "kubefim.fullname" .root) .role .root.Release.Namespace -}}
{{- end -}}

{{/* The agent pods of this release, as a kubectl label selector (for runbooks and NOTES). */}}
{{- define "kubefim.agentPods" -}}
app.kubernetes.io/name=kubefim,app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/component=agent
{{- end -}}
{{- define "kubefim.operatorPods" -}}
app.kubernetes.io/name=kubefim,app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/component=operator
{{- end -}}

{{/* Fails when a kubefim agent DaemonSet of another release already keeps its state in
agent.stateHostPath: two agents on one state directory would fight over one store. Call with
(dict "root" $ "daemonSets" <the items of a DaemonSet list>). */}}
{{- define "kubefim.refuseSharedStateDir" -}}
{{- $root := .root -}}
{{- $wanted := clean $root.Values.agent.stateHostPath -}}
{{- range $ds := .daemonSets -}}
{{- $labels := dig "metadata" "labels" dict $ds -}}
{{- $namespace := dig "metadata" "namespace" "" $ds -}}
{{- $release := get $labels "app.kubernetes.io/instance" -}}
{{- $ours := and (eq $namespace $root.Release.Namespace) (eq $release $root.Release.Name) -}}
{{- if and (eq (get $labels "app.kubernetes.io/name") "kubefim") (eq (get $labels "app.kubernetes.io/component") "agent") (not $ours) -}}
{{- range $volume := dig "spec" "template" "spec" "volumes" list $ds -}}
{{- $path := dig "hostPath" "path" "" $volume -}}
{{- if and $path (eq (clean $path) $wanted) -}}
{{- fail (printf "agent.stateHostPath %s is already the state directory of the kubefim agent DaemonSet %s/%s (release %s): two agents on one state directory would fight over one store. Give this release another one, such as --set agent.stateHostPath=%s-%s" $wanted $namespace (dig "metadata" "name" "" $ds) $release $wanted $root.Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
