import os

import mlflow.deployments

# Only required when running this example outside of a Databricks Notebook
# export DATABRICKS_HOST="https://<workspace_host>.databricks.com"
# export DATABRICKS_TOKEN="dapi-your-databricks-token"

client = mlflow.deployments.get_deploy_client("databricks")

chat_response = client.predict(
    endpoint=os.environ["ENDPOINT_NAME"],
    inputs={
        "messages": [
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hello! How can I assist you today?"},
            {"role": "user", "content": "What is a mixture of experts model??"},
        ],
        "temperature": 0.1,
        "max_tokens": 20,
    },
)

print(chat_response["choices"][0]["message"]["content"])
