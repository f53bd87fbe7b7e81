#!/bin/sh
# Install the dynamic-security file made by `gridwatch stack provision --out
# deploy/secrets/dynsec.json` (logins, per-device ACLs; the plugin rewrites its copy
# when administered over $CONTROL), then start.
set -eu
: "${GW_MQTT__PASSWORD:?GW_MQTT__PASSWORD must be set (see .env.example)}"
if [ ! -f /run/secrets-gw/dynsec.json ]; then
  echo "deploy/secrets/dynsec.json is missing: run gridwatch stack provision --registry deploy/city --out deploy/secrets/dynsec.json" >&2
  exit 1
fi
cp /run/secrets-gw/dynsec.json /mosquitto/data/dynsec.json
chmod 0600 /mosquitto/data/dynsec.json
exec mosquitto -c /mosquitto/config/mosquitto.conf
