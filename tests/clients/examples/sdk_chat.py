import os

from databricks.sdk import WorkspaceClient
from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

w = WorkspaceClient()
response = w.serving_endpoints.query(
    name=os.environ["ENDPOINT_NAME"],
    messages=[
        ChatMessage(role=ChatMessageRole.SYSTEM, content="You are a helpful assistant."),
        ChatMessage(role=ChatMessageRole.USER, content="What is a mixture of experts model?"),
    ],
    max_tokens=128,
)
print(f"RESPONSE:\n{response.choices[0].message.content}")
