{{/*
Labels as deploy/base sets them (no Helm-only labels, so the default render and the kustomize
base are the same objects; helm install adds its own ownership metadata at install time).
*/}}
{{- define "snapcron.labels" -}}
app.kubernetes.io/name: snapcron
{{- with . }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "snapcron.controllerMode" -}}
{{- if not (has .Values.mode (list "controller" "cronjob")) }}
{{- fail (printf "mode: %q is neither controller nor cronjob; set --set mode=controller or mode=cronjob" .Values.mode) }}
{{- end }}
{{- if eq .Values.mode "controller" }}true{{ end }}
{{- end }}

{{- define "snapcron.webhook" -}}
{{- if and (include "snapcron.controllerMode" .) .Values.webhook.enabled }}true{{ end }}
{{- end }}

{{- define "snapcron.container" -}}
image: {{ printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/* The image's numeric user (Dockerfile USER 65532), so runAsNonRoot can be verified. */}}
{{- define "snapcron.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "snapcron.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}
