#!/bin/sh
# The cluster profile's Temporal namespace and the fleet's search attribute (run by
# temporalio/admin-tools once the server is healthy). Safe to run again.
set -eu
ns="${TEMPORAL_NAMESPACE:-default}"
temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1 \
  || temporal operator namespace create --namespace "$ns" --retention 72h
# The saga-bridge registers it too when it may; an existing one is fine.
temporal operator search-attribute create --namespace "$ns" --name OrderId --type Keyword \
  || echo "setup: the search attribute OrderId exists"
echo "setup: namespace $ns is ready"
