#!/bin/sh
# Build the password file from the service password and the provisioned devices file
# (deploy/secrets/devices.passwd, made by `gridwatch stack provision`), then start.
set -eu
: "${GW_MQTT__PASSWORD:?GW_MQTT__PASSWORD must be set (see .env.example)}"
touch /mosquitto/data/passwd
if [ -f /run/secrets-gw/devices.passwd ]; then
  cp /run/secrets-gw/devices.passwd /mosquitto/data/passwd
fi
mosquitto_passwd -b /mosquitto/data/passwd gw-ingest "$GW_MQTT__PASSWORD"
chmod 0700 /mosquitto/data/passwd
exec mosquitto -c /mosquitto/config/mosquitto.conf
