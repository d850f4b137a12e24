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

{{- /* The Secret holding the key the activators share (key peer-key). */}}
{{- define "lambdalet.activatorPeerKeySecret" -}}
{{- .Values.activator.peerKeySecret | default (printf "%s-activator" .Release.Name) }}
{{- end }}

{{- /* The Secret holding the dispatcher's S3 webhook key (key webhook-key). */}}
{{- define "lambdalet.dispatcherWebhookKeySecret" -}}
{{- .Values.dispatcher.webhookKeySecret | default (printf "%s-dispatcher" .Release.Name) }}
{{- end }}

{{- /* The name of `helm test`'s Function and Pod: <release>-helm-test, or helm-test-<release>
when the release name starts with a digit (a Function name must start with a letter); at most 60
characters, as for every Function. */}}
{{- define "lambdalet.testName" -}}
{{- $name := printf "%s-helm-test" .Release.Name }}
{{- if not (regexMatch "^[a-z]" .Release.Name) }}
{{- $name = printf "helm-test-%s" .Release.Name }}
{{- end }}
{{- $name | trunc 60 | trimSuffix "-" }}
{{- end }}

{{- /* The namespace of `helm test`'s Function: tests.namespace; else one the operator watches,
the release namespace when it watches all, or the first operator.watchNamespaces entry that is
a plain name ("team-*" and "a,!b" are patterns). With rbac.namespaced, the names are checked
first, so a pattern fails with the RBAC message whichever template renders first. */}}
{{- define "lambdalet.testNamespace" -}}
{{- if .Values.rbac.namespaced }}
{{- $_ := include "lambdalet.rbac.namespaces" . }}
{{- end }}
{{- if .Values.tests.namespace }}
{{- .Values.tests.namespace }}
{{- else if not .Values.operator.watchNamespaces }}
{{- .Release.Namespace }}
{{- else }}
{{- $plain := list }}
{{- range .Values.operator.watchNamespaces }}
{{- if regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" . }}
{{- $plain = append $plain . }}
{{- end }}
{{- end }}
{{- if not $plain }}
{{- fail (printf "helm test: operator.watchNamespaces (%s) has only patterns; set tests.namespace to a namespace they match, or tests.enabled: false" (join ", " .Values.operator.watchNamespaces)) }}
{{- end }}
{{- first $plain }}
{{- end }}
{{- end }}

{{- /* How long the activator's requests in progress may take once it stops listening: the grace
period left after the drain, minus 5 s for the process to exit before the kubelet's SIGKILL. */}}
{{- define "lambdalet.activatorShutdownTimeout" -}}
{{- $left := subf .Values.activator.terminationGracePeriodSeconds .Values.activator.drainSeconds 5 }}
{{- if lt $left 0.0 }}
{{- fail (printf "activator.terminationGracePeriodSeconds (%v) must exceed activator.drainSeconds (%v) by at least 5 s" .Values.activator.terminationGracePeriodSeconds .Values.activator.drainSeconds) }}
{{- end }}
{{- $left }}
{{- end }}
