#!/usr/bin/env bash
set -euo pipefail
curl --fail-with-body -sS \
  -H "Authorization: Bearer $DATABRICKS_TOKEN" \
  -X POST \
  -H "Content-Type: application/json" \
  -d '{"prompt": "What is the capital of France?", "max_tokens": 10}' \
  $DATABRICKS_HOST/serving-endpoints/$ENDPOINT_NAME/invocations
