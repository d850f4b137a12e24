{{- /* The RBAC rules of each component, written once and used by rbac.yaml twice over: all in a
ClusterRole (rbac.namespaced: false), or the rules on namespaced resources in a Role in each
watched namespace and only the rest, the cluster-scoped ones, in a ClusterRole
(rbac.namespaced: true). Each rules template is a YAML list at column 0, for `nindent 2`. */}}

{{- /* The operator's rules on namespaced resources: Functions and EventSources, and the
Deployments, Services and ConfigMaps it makes for each Function. */}}
{{- define "lambdalet.rbac.operator" -}}
- apiGroups: [lambdalet.dev]
  resources: [functions, eventsources]
  verbs: [get, list, watch]
- apiGroups: [lambdalet.dev]
  resources: [functions/status]
  verbs: [patch]
- apiGroups: [lambdalet.dev]
  resources: [eventsources/status]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}

{{- /* kopf, cluster-scoped: it scans the CRDs at start (API discovery, which needs no RBAC)
and watches them for changes; serving named namespaces (not the whole cluster) it lists and
watches the namespaces, to serve each one while it exists. Without these it still runs, warns,
and serves the named namespaces as they were at start. */}}
{{- define "lambdalet.rbac.kopfDiscovery" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{- /* kopf posts warnings as Events, in the namespace of the object they are about. */}}
{{- define "lambdalet.rbac.kopfEvents" -}}
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}

{{- /* The activator's rules on namespaced resources: Functions, their EndpointSlices, the pod
that announces itself, a Function's bearer-token Secret, by name only, and Warning Events on a
Function whose pods fail their init. */}}
{{- define "lambdalet.rbac.activator" -}}
- apiGroups: [lambdalet.dev]
  resources: [functions]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods, secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}

{{- /* The activator, cluster-scoped: TokenReviews verify a pod's announcement. */}}
{{- define "lambdalet.rbac.tokenReviews" -}}
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
{{- end }}

{{- /* The dispatcher's rules, all on namespaced resources (its Leases are apart, in the release
namespace). */}}
{{- define "lambdalet.rbac.dispatcher" -}}
- apiGroups: [lambdalet.dev]
  resources: [eventsources, functions]
  verbs: [get, list, watch]
- apiGroups: [lambdalet.dev]
  resources: [eventsources/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{- /* rbac.namespaced: the namespaces that get Roles, as a JSON list: operator.watchNamespaces,
each a plain namespace name. Roles go into namespaces named when rendering, and the components
watch each name on its own; a pattern ("team-*", "a,!b") would need cluster-wide reads of the
namespaces and of everything in them, and no list at all means every namespace. */}}
{{- define "lambdalet.rbac.namespaces" -}}
{{- $names := .Values.operator.watchNamespaces }}
{{- if not $names }}
{{- fail "rbac.namespaced: true needs operator.watchNamespaces, the namespaces to grant Roles in (an empty list means every namespace: set rbac.namespaced: false for that)" }}
{{- end }}
{{- range $names }}
{{- if not (and (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) (le (len .) 63)) }}
{{- fail (printf "rbac.namespaced: true needs plain namespace names in operator.watchNamespaces, one Role each; %q is not one (patterns such as \"team-*\" or \"a,!b\" need rbac.namespaced: false)" .) }}
{{- end }}
{{- end }}
{{- $names | uniq | toJson }}
{{- end }}
