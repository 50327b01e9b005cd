#!/bin/sh
# The cluster profile's Temporal schema on PostgreSQL (run by temporalio/admin-tools once,
# before the server starts): the databases `temporal` and `temporal_visibility`, each created
# if missing and brought to the schema version of this server image. Safe to run again.
set -eu
schema=/etc/temporal/schema/postgresql/v12
for db in temporal temporal_visibility; do
  kind=temporal
  [ "$db" = temporal_visibility ] && kind=visibility
  temporal-sql-tool --db "$db" create || echo "setup: database $db exists"
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "$schema/$kind/versioned"
done
echo "setup: Temporal's schema is ready on $SQL_HOST"
