{{/* Labels every object carries; `component` tells the apiserver's objects from the agent's. */}}
{{- define "clustermesh.labels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/part-of: clustermesh
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
clustermesh.io/cluster-name: {{ .root.Values.cluster.name }}
{{- end }}

{{/* Selector labels: stable across upgrades, so never include the version. */}}
{{- define "clustermesh.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "clustermesh.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Where the certificate Secrets are mounted in the apiserver pod. */}}
{{- define "clustermesh.etcdServerCertDir" -}}/var/lib/etcd-secrets{{- end }}
{{- define "clustermesh.etcdClientCertDir" -}}/var/lib/clustermesh/etcd-client{{- end }}

{{/* The Secret the agents read their peers from: the peers themselves, or the kvstoremesh cache. */}}
{{- define "clustermesh.agentRemotesSecret" -}}
{{ ternary .Values.agent.cacheRemotesSecretName .Values.agent.remotesSecretName .Values.apiserver.kvstoremesh.enabled }}
{{- end }}

{{/* Where the agents reach the kvstoremesh cache: the value, else the etcd Service inside the cluster. */}}
{{- define "clustermesh.cacheEndpoint" -}}
{{- .Values.apiserver.kvstoremesh.endpoint | default (printf "https://clustermesh-apiserver.%s.svc:%v" .Release.Namespace .Values.apiserver.etcd.clientPort) }}
{{- end }}
