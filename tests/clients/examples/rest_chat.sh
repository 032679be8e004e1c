#!/usr/bin/env bash
set -euo pipefail
curl --fail-with-body -sS \
  -u token:$DATABRICKS_TOKEN \
  -X POST \
  -H "Content-Type: application/json" \
  -d '{
    "messages": [
      {
        "role": "system",
        "content": "You are a helpful assistant."
      },
      {
        "role": "user",
        "content": "What is a mixture of experts model?"
      }
    ]
  }' \
  $DATABRICKS_HOST/serving-endpoints/$ENDPOINT_NAME/invocations
