import os

import mlflow.deployments

client = mlflow.deployments.get_deploy_client("databricks")

completions_response = client.predict(
    endpoint=os.environ["ENDPOINT_NAME"],
    inputs={"prompt": "What is the capital of France?", "temperature": 0.1, "max_tokens": 10, "n": 2},
)

print(completions_response["choices"][0]["text"])
