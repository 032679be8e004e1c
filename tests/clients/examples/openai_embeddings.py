import os

from openai import OpenAI

DATABRICKS_TOKEN = os.environ.get("DATABRICKS_TOKEN")
DATABRICKS_HOST = os.environ.get("DATABRICKS_HOST")

client = OpenAI(api_key=DATABRICKS_TOKEN, base_url=f"{DATABRICKS_HOST}/serving-endpoints")

embeddings = client.embeddings.create(input="what is databricks", model=os.environ["ENDPOINT_NAME"])

print(embeddings.data[0].embedding)
