import os

from databricks_langchain import ChatDatabricks

chat_model = ChatDatabricks(
    endpoint=os.environ["ENDPOINT_NAME"],
    temperature=0.1,
    max_tokens=250,
)

print(chat_model.invoke("What is MLflow?").content)
