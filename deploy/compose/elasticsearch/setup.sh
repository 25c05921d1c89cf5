#!/usr/bin/env bash
# One-shot (service es-setup), idempotent, runs after Elasticsearch is healthy:
#   * sets the kibana_system password (KIBANA_SYSTEM_PASSWORD);
#   * creates the role and user logwarden's services connect with (LOGWARDEN_ELASTICSEARCH_PASSWORD):
#     everything on logwarden-logs* (index template, daily indices, retention deletes), nothing else;
#   * creates a read-only role and the user Grafana's Elasticsearch datasource uses (GRAFANA_ES_PASSWORD);
#   * registers the filesystem snapshot repository "logwarden-backups" (see docs/operations.md).
# The elastic superuser's password is only ever used here, by kibana-setup, and by people.
set -euo pipefail
: "${ELASTIC_PASSWORD:?}" "${KIBANA_SYSTEM_PASSWORD:?}" "${LOGWARDEN_ELASTICSEARCH_PASSWORD:?}" "${GRAFANA_ES_PASSWORD:?}"

ES=https://elasticsearch:9200

# Credentials go to curl through a config file on stdin-less fd, never on its command line.
es() {
  local method=$1 path=$2 body=${3:-}
  local status
  status=$(curl -s -o /tmp/es-response -w '%{http_code}' --cacert /ca/ca.crt \
    -K <(printf 'user = "elastic:%s"\n' "$ELASTIC_PASSWORD") \
    -X "$method" -H 'Content-Type: application/json' "$ES$path" ${body:+--data-binary "$body"})
  if [ "${status:0:1}" != "2" ]; then
    echo "es-setup: $method $path -> HTTP $status" >&2
    cat /tmp/es-response >&2
    return 1
  fi
}

json_string() {  # a JSON string literal for $1 (passwords are hex in .env.example, but be safe)
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/"/'
}

for attempt in $(seq 1 60); do
  if es GET /_cluster/health?wait_for_status=yellow\&timeout=5s 2>/dev/null; then break; fi
  echo "es-setup: waiting for Elasticsearch ($attempt)"
  sleep 5
done

echo "es-setup: kibana_system password"
es POST /_security/user/kibana_system/_password "{\"password\": $(json_string "$KIBANA_SYSTEM_PASSWORD")}"

echo "es-setup: role and user 'logwarden'"
es PUT /_security/role/logwarden_writer '{
  "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
  "indices": [{"names": ["logwarden-logs*"], "privileges": ["all"]}]
}'
es PUT /_security/user/logwarden "{\"password\": $(json_string "$LOGWARDEN_ELASTICSEARCH_PASSWORD"), \"roles\": [\"logwarden_writer\"], \"full_name\": \"logwarden services\"}"

echo "es-setup: role and user 'grafana_reader'"
es PUT /_security/role/logwarden_reader '{
  "indices": [{"names": ["logwarden-logs*"], "privileges": ["read", "view_index_metadata"]}]
}'
es PUT /_security/user/grafana_reader "{\"password\": $(json_string "$GRAFANA_ES_PASSWORD"), \"roles\": [\"logwarden_reader\"], \"full_name\": \"Grafana datasource\"}"

echo "es-setup: snapshot repository 'logwarden-backups'"
es PUT /_snapshot/logwarden-backups '{"type": "fs", "settings": {"location": "/usr/share/elasticsearch/snapshots"}}'

echo "es-setup: done"
