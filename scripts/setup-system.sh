#!/usr/bin/env bash
# Install the Debian packages the local stack and the browser tests need, if missing.
# Runs apt-get only as root; otherwise prints the one command that would do it.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v influx >/dev/null 2>&1 || need+=(influxdb-client)
# Apache Kafka runs on a JRE 17 and is fetched from Maven Central by Maven
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
# PostgreSQL's server binaries: tests and the tickets bench start private clusters with them
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/gridwatch-apt.log 2>&1; then
  apt-get update -q >>/tmp/gridwatch-apt.log 2>&1
  apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/gridwatch-apt.log 2>&1 \
    || { echo "apt-get install failed; see /tmp/gridwatch-apt.log" >&2; exit 1; }
fi
# The Debian packages start system services; GridWatch runs its own, on its own ports.
for svc in influxdb postgresql mosquitto; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
done
