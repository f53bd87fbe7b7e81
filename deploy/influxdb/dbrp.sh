#!/bin/bash
# InfluxDB 2.x init hook: map database "gridwatch" to the bucket so InfluxQL
# (Grafana dashboards, gridwatch's own queries) works against 2.x.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db gridwatch --rp autogen --bucket-id "${bucket_id}" --default
