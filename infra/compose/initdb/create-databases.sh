#!/bin/bash
# Create the databases named in POSTGRES_MULTIPLE_DATABASES (postgres image init hook).
set -euo pipefail
IFS=',' read -ra dbs <<< "${POSTGRES_MULTIPLE_DATABASES:-}"
for db in "${dbs[@]}"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -c "CREATE DATABASE $db"
done
