"""The ingest inputs: uploads, HTTP bodies, Elasticsearch bulk, OTLP, TCP and syslog."""
