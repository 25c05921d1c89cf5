#!/usr/bin/env bash
# Refresh the vendored browser libraries from the npm registry (`make vendor`).
# Versions are pinned here; VERSIONS.md records what is committed and its licence.
set -euo pipefail
cd "$(dirname "$0")"
CHARTJS=4.6.1
SOCKETIO=4.8.4
SWAGGER=5.35.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
  "chart.js@$CHARTJS" "socket.io-client@$SOCKETIO" "swagger-ui-dist@$SWAGGER" >/dev/null)
m="$work/node_modules"
cp "$m/chart.js/dist/chart.umd.min.js" chart.umd.min.js
cp "$m/chart.js/LICENSE.md" chart.js.LICENSE.md
cp "$m/socket.io-client/dist/socket.io.min.js" socket.io.min.js
cp "$m/socket.io-client/LICENSE" socket.io-client.LICENSE
mkdir -p swagger-ui
cp "$m/swagger-ui-dist/swagger-ui-bundle.js" "$m/swagger-ui-dist/swagger-ui.css" swagger-ui/
cp "$m/swagger-ui-dist/LICENSE" swagger-ui/LICENSE
cat > VERSIONS.md <<MD
# Vendored browser libraries

Refreshed by \`make vendor\` (services/gateway/static/vendor/update.sh) from the npm registry.

| package | version | licence | files |
|---|---|---|---|
| chart.js | $CHARTJS | MIT (chart.js.LICENSE.md) | chart.umd.min.js |
| socket.io-client | $SOCKETIO | MIT (socket.io-client.LICENSE) | socket.io.min.js |
| swagger-ui-dist | $SWAGGER | Apache-2.0 (swagger-ui/LICENSE) | swagger-ui/swagger-ui-bundle.js, swagger-ui/swagger-ui.css |
MD
echo "vendored chart.js $CHARTJS, socket.io-client $SOCKETIO, swagger-ui-dist $SWAGGER"
