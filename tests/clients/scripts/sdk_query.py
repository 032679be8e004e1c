"""One databricks-sdk chat query; prints the answer as JSON. Usage: sdk_query.py ENDPOINT."""

import json
import sys

from databricks.sdk import WorkspaceClient
from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

w = WorkspaceClient()
r = w.serving_endpoints.query(sys.argv[1], messages=[ChatMessage(role=ChatMessageRole.USER, content="retry me")])
print(json.dumps({"content": r.choices[0].message.content}))
