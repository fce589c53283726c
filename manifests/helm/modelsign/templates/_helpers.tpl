{{/* Names: <release>-modelsign unless the release is already called modelsign. */}}
{{- define "modelsign.fullname" -}}
{{- if contains "modelsign" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-modelsign" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelsign.labels" -}}
app.kubernetes.io/name: modelsign
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelsign
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelsign.selectorLabels" -}}
app.kubernetes.io/name: modelsign
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{/* repository@digest when a digest is given (what was verified is what runs), else repository:tag. */}}
{{- define "modelsign.image" -}}
{{- if .Values.image.digest -}}
{{- if not (regexMatch "^sha256:[a-f0-9]{64}$" .Values.image.digest) -}}
{{- fail (printf "image.digest %q: give the manifest digest as sha256:<64 hex> (bash .ci/image prints it)" .Values.image.digest) -}}
{{- end -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "modelsign.keysSecret" -}}
{{- .Values.existingKeysSecret | default (printf "%s-keys" (include "modelsign.fullname" .)) -}}
{{- end -}}

{{- define "modelsign.tlsSecret" -}}
{{- printf "%s-webhook-tls" (include "modelsign.fullname" .) -}}
{{- end -}}

{{- define "modelsign.service" -}}
{{- printf "%s-webhook" (include "modelsign.fullname" .) -}}
{{- end -}}

{{/* The namespaces the webhook configurations skip: the policy's exemptions and this release's namespace. */}}
{{- define "modelsign.exemptNamespaces" -}}
{{- $names := concat (.Values.policy.exemptNamespaces | default list) (list .Release.Namespace) | uniq -}}
{{- toJson $names -}}
{{- end -}}

{{/* The AdmissionPolicy: values.policy plus the keys, the release's namespace and the self-verification rule. */}}
{{- define "modelsign.policy" -}}
{{- $policy := deepCopy .Values.policy -}}
{{- $_ := set $policy "exemptNamespaces" (include "modelsign.exemptNamespaces" . | fromJsonArray) -}}
{{- $keys := deepCopy ($policy.trustedKeys | default dict) -}}
{{- range $name, $_ := .Values.trustedKeys -}}
{{- $_ := set $keys $name (dict "file" (printf "/etc/modelsign/keys/%s.pub" $name)) -}}
{{- end -}}
{{- $_ := set $policy "trustedKeys" $keys -}}
{{- if .Values.selfVerification.enabled -}}
{{- if not (hasKey $keys .Values.selfVerification.key) -}}
{{- fail (printf "selfVerification.key %q is not in trustedKeys (add its public key there, or set selfVerification.enabled=false)" .Values.selfVerification.key) -}}
{{- end -}}
{{- $registry := regexReplaceAll "/.*$" .Values.image.repository "" -}}
{{- $_ := set $policy "allowedRegistries" (concat ($policy.allowedRegistries | default list) (list $registry) | uniq) -}}
{{- $rule := dict "name" "modelsign-release" "artifacts" (list .Values.image.repository) "namespaces" (list "*") "require" (dict "signedBy" (list .Values.selfVerification.key)) -}}
{{- $_ := set $policy "rules" (append ($policy.rules | default list) $rule) -}}
{{- end -}}
{{- toYaml $policy -}}
{{- end -}}
