#!/usr/bin/env bash
set -euo pipefail
curl --fail-with-body -sS \
  -u token:$DATABRICKS_TOKEN \
  -X POST \
  -H "Content-Type: application/json" \
  -d '{"input": "Embed this sentence!"}' \
  $DATABRICKS_HOST/serving-endpoints/$ENDPOINT_NAME/invocations
