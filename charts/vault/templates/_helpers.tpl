{{/* Names. */}}
{{- define "vault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vault.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Component names stay under 63 characters: the full name is capped at 40. */}}
{{- define "vault.server.name" -}}{{ include "vault.fullname" . }}-server{{- end -}}
{{- define "vault.controller.name" -}}{{ include "vault.fullname" . }}-controller{{- end -}}
{{- define "vault.webhook.name" -}}{{ include "vault.fullname" . }}-webhook{{- end -}}
{{- define "vault.etcd.name" -}}{{ include "vault.fullname" . }}-etcd{{- end -}}
{{- define "vault.rootKey.secretName" -}}
{{- default (printf "%s-root-key" (include "vault.fullname" .)) .Values.rootKey.existingSecret -}}
{{- end -}}
{{- define "vault.etcd.tlsSecretName" -}}{{ include "vault.fullname" . }}-etcd-tls{{- end -}}
{{- define "vault.server.tlsSecretName" -}}
{{- default (printf "%s-server-tls" (include "vault.fullname" .)) .Values.server.tls.existingSecret -}}
{{- end -}}
{{- define "vault.webhook.tlsSecretName" -}}{{ include "vault.fullname" . }}-webhook-tls{{- end -}}
{{/* Cluster-scoped objects carry the namespace so that two releases of the same name in
     different namespaces do not collide. */}}
{{- define "vault.clusterName" -}}{{ include "vault.fullname" . }}-{{ .Release.Namespace }}{{- end -}}

{{/* Labels. */}}
{{- define "vault.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vault.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vault.labels" -}}
{{ include "vault.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: vault
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The image every role runs. */}}
{{- define "vault.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "vault.agentImage" -}}
{{- $repo := default .Values.image.repository .Values.webhook.agent.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.webhook.agent.tag -}}
{{- if and .Values.image.digest (not .Values.webhook.agent.repository) (not .Values.webhook.agent.tag) -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The API address the controller and injected agents use: this release's Service, or
     with server.enabled=false the shared Vault at externalVault.address. */}}
{{- define "vault.server.address" -}}
{{- if .Values.server.enabled -}}
{{- printf "%s://%s.%s.svc:%v" (ternary "https" "http" .Values.server.tls.enabled) (include "vault.fullname" .) .Release.Namespace .Values.server.service.port -}}
{{- else -}}
{{- .Values.externalVault.address | trimSuffix "/" -}}
{{- end -}}
{{- end -}}

{{- define "vault.externalVault.caConfigMapName" -}}{{ include "vault.fullname" . }}-vault-ca{{- end -}}
{{- define "vault.tokenReviewer.name" -}}{{ include "vault.fullname" . }}-token-reviewer{{- end -}}

{{/* Whether the controller and the webhook get a CA file for the API: the generated or given
     API certificate's CA, or the CA of the shared Vault (none: the system's trusted CAs). */}}
{{- define "vault.server.hasCa" -}}
{{- if .Values.server.enabled -}}
{{- if .Values.server.tls.enabled }}true{{ end -}}
{{- else if or .Values.externalVault.caBundle .Values.externalVault.caConfigMap .Values.externalVault.caSecret -}}
true
{{- end -}}
{{- end -}}

{{/* The volume holding that CA as `ca.crt`: only the certificate, never a key. */}}
{{- define "vault.server.caVolume" -}}
- name: server-ca
{{- if .Values.server.enabled }}
  secret:
    secretName: {{ include "vault.server.tlsSecretName" . }}
    items:
      - key: ca.crt
        path: ca.crt
    defaultMode: 288 # 0440
{{- else if .Values.externalVault.caSecret }}
  secret:
    secretName: {{ .Values.externalVault.caSecret }}
    items:
      - key: {{ .Values.externalVault.caKey }}
        path: ca.crt
    defaultMode: 288 # 0440
{{- else }}
  configMap:
    name: {{ default (include "vault.externalVault.caConfigMapName" .) .Values.externalVault.caConfigMap }}
    items:
      - key: {{ ternary .Values.externalVault.caKey "ca.crt" (not (empty .Values.externalVault.caConfigMap)) }}
        path: ca.crt
    defaultMode: 288 # 0440
{{- end }}
{{- end -}}

{{/* A preferred anti-affinity on the component's own pods, unless the user set affinity. */}}
{{- define "vault.affinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "vault.selectorLabels" . | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* Shared pod-spec fields: pull secrets, security context, scheduling. */}}
{{- define "vault.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
  {{- include "vault.affinity" (dict "root" .root "component" .component "affinity" .values.affinity) | nindent 2 }}
{{- end -}}

{{/* The chart runs etcd only for its own API servers. */}}
{{- define "vault.etcd.bundled" -}}
{{- if and .Values.server.enabled (eq .Values.storage.type "bundled") }}true{{ end -}}
{{- end -}}

{{/* The bundled etcd's --max-txn-ops, also given to the API server. The default is repeated
     here for `helm upgrade --reuse-values` from a chart without this value. */}}
{{- define "vault.etcd.maxTxnOps" -}}{{ .Values.etcd.maxTxnOps | default 1024 | int }}{{- end -}}

{{/* The bundled etcd's client URLs. */}}
{{- define "vault.etcd.endpoints" -}}
{{- $name := include "vault.etcd.name" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "https://%s-%d.%s.%s.svc:2379" $name $i $name $.Release.Namespace) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* Values the schema cannot express; fail with a message that says what to change. */}}
{{- define "vault.validate" -}}
{{- if and (eq .Values.storage.type "external") (empty .Values.storage.external.endpoints) -}}
{{- fail "storage.type is external, so set storage.external.endpoints to your etcd client URLs" -}}
{{- end -}}
{{- if and (eq .Values.storage.type "external") .Values.storage.external.tls.enabled (empty .Values.storage.external.tls.existingSecret) -}}
{{- fail "storage.external.tls.enabled is true, so set storage.external.tls.existingSecret to a Secret with the etcd CA, client certificate and key (or set storage.external.tls.enabled=false)" -}}
{{- end -}}
{{- if not .Values.server.enabled -}}
{{- if not (or .Values.controller.enabled .Values.webhook.enabled) -}}
{{- fail "server.enabled=false installs only the controller and the webhook, and both are disabled: enable one, or install nothing" -}}
{{- end -}}
{{- if gt (len (compact (list .Values.externalVault.caBundle .Values.externalVault.caConfigMap .Values.externalVault.caSecret))) 1 -}}
{{- fail "give the shared Vault's CA one way: externalVault.caBundle, externalVault.caConfigMap or externalVault.caSecret" -}}
{{- end -}}
{{- if .Values.server.remoteClusters -}}
{{- fail "server.remoteClusters configures this release's API servers, and server.enabled=false runs none: set it on the release that runs the API servers" -}}
{{- end -}}
{{- else -}}
{{- if .Values.externalVault.address -}}
{{- fail "externalVault.address is for a controller-only install (server.enabled=false); this release runs its own API servers: unset externalVault.address, or set server.enabled=false" -}}
{{- end -}}
{{- $seen := list -}}
{{- range .Values.server.remoteClusters -}}
{{- if eq .name $.Values.clusterName -}}
{{- fail (printf "server.remoteClusters names %q, which is this cluster (clusterName): name the other cluster" .name) -}}
{{- end -}}
{{- if has .name $seen -}}
{{- fail (printf "server.remoteClusters names %q twice: give each cluster once" .name) -}}
{{- end -}}
{{- $seen = append $seen .name -}}
{{- end -}}
{{- end -}}
{{- /* RBAC has no deny: a RoleBinding there would let the controller read the root key and the
       etcd client certificate, with which it could decrypt everything offline. */ -}}
{{- /* dig: `helm upgrade --reuse-values` from a chart without the value renders without it. */ -}}
{{- range (dig "secretImport" "namespaces" (list) .Values.controller) -}}
{{- if eq . $.Release.Namespace -}}
{{- fail (printf "controller.secretImport.namespaces names %q, the release namespace: it holds the root key and the etcd client certificate, which the controller must never be able to read. Keep application Secrets in their own namespaces and list those" .) -}}
{{- end -}}
{{- if eq . "kube-system" -}}
{{- fail "controller.secretImport.namespaces names \"kube-system\", which holds the cluster's own credentials: keep application Secrets in their own namespaces and list those" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.controller.enabled (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection.enabled) -}}
{{- fail "controller.replicas > 1 needs controller.leaderElection.enabled=true (two leaders would reconcile the same objects)" -}}
{{- end -}}
{{- end -}}

{{/* Store settings of the one role that opens the store: the API server. */}}
{{- /* The store and root key as environment variables, not flags, so that every `vault`
       command run in the pod (`kubectl exec ... -- vault operator root-token`) finds the same
       store as the server. The root key is a variable, not a file: a Secret volume under
       fsGroup is group-readable, which the root-key file check rightly refuses. */ -}}
{{- define "vault.storeEnv" -}}
- name: VAULT_STORE
  value: etcd
{{- if eq .Values.storage.type "bundled" }}
- name: VAULT_ETCD_ENDPOINTS
  value: {{ include "vault.etcd.endpoints" . | quote }}
- name: VAULT_ETCD_CA_FILE
  value: /etc/vault/etcd/ca.crt
- name: VAULT_ETCD_CERT_FILE
  value: /etc/vault/etcd/tls.crt
- name: VAULT_ETCD_KEY_FILE
  value: /etc/vault/etcd/tls.key
- name: VAULT_ETCD_MAX_TXN_OPS
  value: {{ include "vault.etcd.maxTxnOps" . | quote }}
{{- else }}
- name: VAULT_ETCD_ENDPOINTS
  value: {{ join "," .Values.storage.external.endpoints | quote }}
- name: VAULT_ETCD_MAX_TXN_OPS
  value: {{ .Values.storage.external.maxTxnOps | default 128 | int | quote }}
{{- if .Values.storage.external.tls.enabled }}
- name: VAULT_ETCD_CA_FILE
  value: /etc/vault/etcd/{{ .Values.storage.external.tls.caKey }}
- name: VAULT_ETCD_CERT_FILE
  value: /etc/vault/etcd/{{ .Values.storage.external.tls.certKey }}
- name: VAULT_ETCD_KEY_FILE
  value: /etc/vault/etcd/{{ .Values.storage.external.tls.keyKey }}
{{- end }}
{{- end }}
- name: VAULT_ROOT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "vault.rootKey.secretName" . }}
      key: {{ .Values.rootKey.secretKey }}
{{- end -}}

{{- define "vault.storeMounts" -}}
{{- if or (eq .Values.storage.type "bundled") .Values.storage.external.tls.enabled }}
- name: etcd-client-tls
  mountPath: /etc/vault/etcd
  readOnly: true
{{- end }}
{{- end -}}

{{- define "vault.storeVolumes" -}}
{{- if eq .Values.storage.type "bundled" }}
- name: etcd-client-tls
  secret:
    secretName: {{ include "vault.etcd.name" . }}-client-tls
    defaultMode: 288 # 0440
{{- else if .Values.storage.external.tls.enabled }}
- name: etcd-client-tls
  secret:
    secretName: {{ .Values.storage.external.tls.existingSecret }}
    defaultMode: 288 # 0440
{{- end }}
{{- end -}}

{{/* Changes that must roll the pods that open the store. */}}
{{- define "vault.storeChecksum" -}}
{{- printf "%s|%s|%s" (include "vault.rootKey.secretName" .) (include "vault.etcd.endpoints" .) (toJson .Values.storage) | sha256sum | trunc 16 -}}
{{- end -}}
