{{- define "lambdalet.labels" -}}
app.kubernetes.io/name: lambdalet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "lambdalet.operatorSelector" -}}
app.kubernetes.io/name: lambdalet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "lambdalet.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}

{{- define "lambdalet.activatorSelector" -}}
app.kubernetes.io/name: lambdalet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: activator
{{- end }}

{{- define "lambdalet.dispatcherSelector" -}}
app.kubernetes.io/name: lambdalet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dispatcher
{{- end }}

{{- /* The operator's autoscaler Service: activators and dispatchers report load and poke here. */}}
{{- define "lambdalet.autoscalerURL" -}}
http://{{ .Release.Name }}-autoscaler.{{ .Release.Namespace }}.svc:8082
{{- end }}

{{- /* The Secret holding the dispatcher's S3 webhook key (key webhook-key). */}}
{{- define "lambdalet.dispatcherWebhookKeySecret" -}}
{{- .Values.dispatcher.webhookKeySecret | default (printf "%s-dispatcher" .Release.Name) }}
{{- end }}
