#!/usr/bin/env bash
# One-shot (service kibana-setup): the Kibana data view on logwarden's daily indices,
# time field `timestamp` (DESIGN.md §4). Idempotent: a fixed id and "override": true.
set -euo pipefail
: "${ELASTIC_PASSWORD:?}" "${KIBANA_URL:=http://kibana:5601}"

body='{
  "override": true,
  "data_view": {
    "id": "logwarden-logs",
    "name": "logwarden logs",
    "title": "logwarden-logs-*",
    "timeFieldName": "timestamp",
    "allowNoIndex": true
  }
}'

for attempt in $(seq 1 30); do
  status=$(curl -s -o /tmp/kibana-response -w '%{http_code}' \
    -K <(printf 'user = "elastic:%s"\n' "$ELASTIC_PASSWORD") \
    -X POST "$KIBANA_URL/api/data_views/data_view" \
    -H 'kbn-xsrf: logwarden' -H 'Content-Type: application/json' --data-binary "$body") || status=000
  if [ "${status:0:1}" = "2" ]; then
    echo "kibana-setup: data view logwarden-logs-* ready"
    exit 0
  fi
  echo "kibana-setup: HTTP $status, retrying ($attempt)" >&2
  cat /tmp/kibana-response >&2 || true
  sleep 5
done
exit 1
