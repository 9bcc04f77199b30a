#!/usr/bin/env bash
# Creates an API key for a tenant and prints it, alone on one line, on stdout; messages go to stderr.
#   scripts/create-key.sh <tenant> [name] [--name N] [--expires-days D]
#   KEY=$(scripts/create-key.sh acme ci --expires-days 90)
# Starts PostgreSQL if needed and builds the API once if its dll is missing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || die "usage: scripts/create-key.sh <tenant> [name] [--name N] [--expires-days D]"

start_postgres
service_env

DLL="$ROOT/src/Api/bin/$CONFIGURATION/net10.0/Async.Serving.Api.dll"
if [ ! -f "$DLL" ]; then
  log "building the API ($CONFIGURATION)"
  dotnet build "$ROOT/src/Api/Api.csproj" -c "$CONFIGURATION" -nologo -v q -clp:NoSummary >"$LOGS/build-api.log" 2>&1 \
    || { tail -40 "$LOGS/build-api.log" >&2; die "build failed, see $LOGS/build-api.log"; }
fi

exec dotnet "$DLL" create-key "$@"
