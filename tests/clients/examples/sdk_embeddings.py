import os

from databricks.sdk import WorkspaceClient

w = WorkspaceClient()
response = w.serving_endpoints.query(
    name=os.environ["ENDPOINT_NAME"],
    input="Embed this sentence!",
)
print(response.data[0].embedding)
