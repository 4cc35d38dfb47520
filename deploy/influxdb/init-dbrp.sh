#!/bin/sh
# InfluxDB 2.x: map the InfluxQL database `oddwatch` to the bucket, create a read-only v1
# user for Grafana and a read/write v1 user for the oddwatch flows (bucket only, never admin). docker-compose mounts this file in /docker-entrypoint-initdb.d, where
# the influxdb:2 image runs it once, right after the initial setup, with the influx CLI
# already pointed at the server (INFLUX_HOST) and the DOCKER_INFLUXDB_INIT_* variables set.
#
# By hand against an existing InfluxDB 2.x (the same two steps):
#   influx v1 dbrp create --db oddwatch --rp autogen --bucket-id <BUCKET_ID> --default \
#       --org <ORG> --token <ADMIN_TOKEN>
#   influx v1 auth create --username grafana --password <PASSWORD> --read-bucket <BUCKET_ID> \
#       --org <ORG> --token <ADMIN_TOKEN>
#   influx v1 auth create --username oddwatch --password <PASSWORD> --read-bucket <BUCKET_ID> \
#       --write-bucket <BUCKET_ID> --org <ORG> --token <ADMIN_TOKEN>
set -eu

org="${DOCKER_INFLUXDB_INIT_ORG:?set DOCKER_INFLUXDB_INIT_ORG}"
bucket="${DOCKER_INFLUXDB_INIT_BUCKET:?set DOCKER_INFLUXDB_INIT_BUCKET}"
token="${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN:?set DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}"
database="${ODDWATCH_INFLUX_DATABASE:-oddwatch}"

bucket_id="$(influx bucket list --org "$org" --token "$token" --name "$bucket" --hide-headers | cut -f1)"
if [ -z "$bucket_id" ]; then
    echo "init-dbrp: bucket '$bucket' not found in org '$org'" >&2
    exit 1
fi

if influx v1 dbrp list --org "$org" --token "$token" --db "$database" --hide-headers | grep -q .; then
    echo "init-dbrp: a DBRP mapping for database '$database' exists already"
else
    influx v1 dbrp create --org "$org" --token "$token" \
        --db "$database" --rp autogen --bucket-id "$bucket_id" --default
    echo "init-dbrp: database '$database' (rp autogen) -> bucket '$bucket' ($bucket_id)"
fi

if [ -n "${GRAFANA_INFLUX_USER:-}" ]; then
    influx v1 auth create --org "$org" --token "$token" \
        --username "$GRAFANA_INFLUX_USER" --password "${GRAFANA_INFLUX_PASSWORD:?set GRAFANA_INFLUX_PASSWORD}" \
        --read-bucket "$bucket_id" --description "grafana (read-only, InfluxQL)"
    echo "init-dbrp: v1 user '$GRAFANA_INFLUX_USER' can read bucket '$bucket'"
fi

if [ -n "${ODDWATCH_INFLUX_USER:-}" ]; then
    influx v1 auth create --org "$org" --token "$token" \
        --username "$ODDWATCH_INFLUX_USER" --password "${ODDWATCH_INFLUX_PASSWORD:?set ODDWATCH_INFLUX_PASSWORD}" \
        --read-bucket "$bucket_id" --write-bucket "$bucket_id" --description "oddwatch flows (read/write, bucket only)"
    echo "init-dbrp: v1 user '$ODDWATCH_INFLUX_USER' can read and write bucket '$bucket'"
fi
