{{/* Names and labels. */}}
{{- define "pilot-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pilot-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pilot-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pilot-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pilot-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pilot-agent.labels" -}}
helm.sh/chart: {{ include "pilot-agent.chart" . }}
{{ include "pilot-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pilot-agent
{{- end -}}

{{- define "pilot-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pilot-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pilot-agent.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Rule files mounted next to pilot.yml: file name -> content. */}}
{{- define "pilot-agent.ruleFiles" -}}
{{- $out := dict -}}
{{- range $path, $_ := .Files.Glob "files/rules/*.rules.yml" -}}
{{- $_ := set $out (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- range $name, $content := .Values.rules.extra -}}
{{- $_ := set $out $name (toYaml $content) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Refuse secrets written into the configuration: a password, bearer_token or
credentials field, or a basic_auth_users hash, must be a ${NAME} reference to an
environment variable (secrets.env); otherwise use its *_file twin.
*/}}
{{- define "pilot-agent.noInlineSecrets" -}}
{{- $path := .path -}}
{{- $ref := `^\$\{[A-Za-z_][A-Za-z0-9_]*\}$` -}}
{{- if kindIs "map" .v -}}
{{- range $k, $v := .v -}}
{{- $p := ternary $k (printf "%s.%s" $path $k) (eq $path "") -}}
{{- if and (has $k (list "password" "bearer_token" "credentials")) $v -}}
{{- if not (regexMatch $ref (toString $v)) -}}
{{- fail (printf "config.%s holds a secret inline; set %s_file from a Secret (secrets.*) or write ${NAME} and pass NAME with secrets.env" $p $k) -}}
{{- end -}}
{{- else if and (eq $k "basic_auth_users") (kindIs "map" $v) -}}
{{- range $user, $hash := $v -}}
{{- if not (regexMatch $ref (toString $hash)) -}}
{{- fail (printf "config.%s.%s holds a password hash inline; write ${NAME} and pass NAME with secrets.env" $p $user) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- include "pilot-agent.noInlineSecrets" (dict "v" $v "path" $p) -}}
{{- end -}}
{{- end -}}
{{- else if kindIs "slice" .v -}}
{{- range $i, $item := .v -}}
{{- include "pilot-agent.noInlineSecrets" (dict "v" $item "path" (printf "%s[%d]" $path $i)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Fail early on combinations that would deploy a broken or duplicating agent. */}}
{{- define "pilot-agent.validate" -}}
{{- $cfg := .Values.config -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- if not (and (dig "state" "leader_election" "enabled" false $cfg) (dig "state" "redis" "url" "" $cfg)) -}}
{{- fail "replicaCount > 1 needs config.state.leader_election.enabled: true and config.state.redis.url, or every replica would notify and emit events" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.secrets.redis.existingSecret (not (dig "state" "redis" "url" "" $cfg)) -}}
{{- fail "secrets.redis.existingSecret is set but config.state.redis.url is not" -}}
{{- end -}}
{{- if and .Values.secrets.kafka.existingSecret (not (dig "events" "kafka" "sasl" nil $cfg)) -}}
{{- fail "secrets.kafka.existingSecret is set but config.events.kafka.sasl is not" -}}
{{- end -}}
{{- if and .Values.secrets.alertmanager.existingSecret (not (dig "alerting" "alertmanagers" nil $cfg)) -}}
{{- fail "secrets.alertmanager.existingSecret is set but config.alerting.alertmanagers is empty" -}}
{{- end -}}
{{- end -}}

{{/* The agent's pilot.yml: config: merged with the paths the chart manages. */}}
{{- define "pilot-agent.config" -}}
{{- include "pilot-agent.validate" . -}}
{{- $cfg := deepCopy .Values.config -}}
{{- include "pilot-agent.noInlineSecrets" (dict "v" $cfg "path" "") -}}
{{- $data := .Values.paths.data -}}
{{- $sec := .Values.paths.secrets -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) -}}
{{- if .Values.rules.agent -}}
{{- $files := list "rules/*.rules.yml" -}}
{{- range (get $cfg "rule_files" | default list) -}}
{{- if ne . "rules/*.rules.yml" -}}{{- $files = append $files . -}}{{- end -}}
{{- end -}}
{{- $_ := set $cfg "rule_files" $files -}}
{{- end -}}
{{- $events := get $cfg "events" | default dict -}}
{{- $jsonl := get $events "jsonl" | default dict -}}
{{- $_ := set $jsonl "path" (printf "%s/events.jsonl" $data) -}}
{{- $_ := set $events "jsonl" $jsonl -}}
{{- if hasKey $events "kafka" -}}
{{- $kafka := get $events "kafka" | default dict -}}
{{- $spool := get $kafka "spool" | default dict -}}
{{- $_ := set $spool "directory" (printf "%s/spool" $data) -}}
{{- $_ := set $kafka "spool" $spool -}}
{{- with .Values.secrets.kafka.existingSecret -}}
{{- $sasl := get $kafka "sasl" -}}
{{- $_ := set $sasl "password_file" (printf "%s/kafka/%s" $sec $.Values.secrets.kafka.passwordKey) -}}
{{- end -}}
{{- $_ := set $events "kafka" $kafka -}}
{{- end -}}
{{- $_ := set $cfg "events" $events -}}
{{- $watch := get $cfg "watch" | default dict -}}
{{- if not (and (hasKey $watch "state_file") (kindIs "invalid" (get $watch "state_file"))) -}}
{{- $_ := set $watch "state_file" (printf "%s/watch-state.json" $data) -}}
{{- end -}}
{{- $_ := set $cfg "watch" $watch -}}
{{- $snapshot := dig "state" "snapshot_file" "" $cfg -}}
{{- if and $snapshot (not (hasPrefix "/" $snapshot)) -}}
{{- $_ := set (get $cfg "state") "snapshot_file" (printf "%s/%s" $data $snapshot) -}}
{{- end -}}
{{- with .Values.secrets.redis.existingSecret -}}
{{- $redis := dig "state" "redis" dict $cfg -}}
{{- $_ := set $redis "password_file" (printf "%s/redis/%s" $sec $.Values.secrets.redis.passwordKey) -}}
{{- end -}}
{{- with .Values.secrets.alertmanager.existingSecret -}}
{{- range $am := dig "alerting" "alertmanagers" list $cfg -}}
{{- $ba := get $am "basic_auth" -}}
{{- if and (kindIs "map" $ba) (not (get $ba "password_file")) -}}
{{- $_ := set $ba "password_file" (printf "%s/alertmanager/%s" $sec $.Values.secrets.alertmanager.passwordKey) -}}
{{- end -}}
{{- $authz := get $am "authorization" -}}
{{- if and (kindIs "map" $authz) (not (get $authz "credentials_file")) -}}
{{- $_ := set $authz "credentials_file" (printf "%s/alertmanager/%s" $sec $.Values.secrets.alertmanager.credentialsKey) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with .Values.webTLS.existingSecret -}}
{{- $web := get $cfg "web" | default dict -}}
{{- $_ := set $web "tls_server_config" (dict "cert_file" (printf "%s/web-tls/tls.crt" $sec) "key_file" (printf "%s/web-tls/tls.key" $sec)) -}}
{{- $_ := set $cfg "web" $web -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* HTTP probes, or TCP ones when basic auth guards every endpoint (probes send no credentials). */}}
{{- define "pilot-agent.probe" -}}
{{- $users := dig "web" "basic_auth_users" dict .root.Values.config -}}
{{- if $users }}
tcpSocket:
  port: http
{{- else }}
httpGet:
  path: {{ .path }}
  port: http
  scheme: {{ ternary "HTTPS" "HTTP" (not (empty .root.Values.webTLS.existingSecret)) }}
{{- end }}
{{ toYaml .settings }}
{{- end -}}
