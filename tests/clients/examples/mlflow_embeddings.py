import os

import mlflow.deployments

client = mlflow.deployments.get_deploy_client("databricks")

embeddings_response = client.predict(
    endpoint=os.environ["ENDPOINT_NAME"],
    inputs={"input": "Here is some text to embed"},
)

print(embeddings_response["data"][0]["embedding"])
