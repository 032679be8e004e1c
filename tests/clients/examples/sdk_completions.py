import os

from databricks.sdk import WorkspaceClient

w = WorkspaceClient()
response = w.serving_endpoints.query(
    name=os.environ["ENDPOINT_NAME"],
    prompt="What is the capital of France?",
    max_tokens=10,
)
print(f"RESPONSE:\n{response.choices[0].text}")
