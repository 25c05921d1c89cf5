#!/usr/bin/env bash
# One-shot (service es-certs): a private CA and Elasticsearch's certificate, created once.
#   /certs     -> volume es-certs, mounted only by Elasticsearch (holds the private keys)
#   /ca        -> volume es-ca, the CA certificate alone, mounted read-only by every client
#   /snapshots -> volume es-snapshots, made writable for Elasticsearch (uid 1000) for snapshots
set -euo pipefail
cd /usr/share/elasticsearch

if [ ! -f /certs/ca/ca.crt ]; then
  echo "es-certs: creating the CA"
  bin/elasticsearch-certutil ca --silent --pem --days 3650 -out /certs/ca.zip
  unzip -o -q /certs/ca.zip -d /certs
  rm -f /certs/ca.zip
fi

if [ ! -f /certs/elasticsearch/elasticsearch.crt ]; then
  echo "es-certs: creating the Elasticsearch certificate"
  cat > /certs/instances.yml <<'YAML'
instances:
  - name: elasticsearch
    dns: [elasticsearch, localhost]
    ip: [127.0.0.1]
YAML
  bin/elasticsearch-certutil cert --silent --pem --days 1095 -out /certs/certs.zip \
    --in /certs/instances.yml --ca-cert /certs/ca/ca.crt --ca-key /certs/ca/ca.key
  unzip -o -q /certs/certs.zip -d /certs
  rm -f /certs/certs.zip
fi

# Elasticsearch runs as uid 1000, gid 0: keys readable by it alone.
chown -R 1000:0 /certs /snapshots
find /certs -type d -exec chmod 750 {} +
find /certs -type f -exec chmod 640 {} +

# Clients only ever get the CA certificate, which is public.
install -m 644 /certs/ca/ca.crt /ca/ca.crt
echo "es-certs: done"
