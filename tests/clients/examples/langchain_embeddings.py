import os

from databricks_langchain import DatabricksEmbeddings

embeddings = DatabricksEmbeddings(endpoint=os.environ["ENDPOINT_NAME"])

print(embeddings.embed_query("Can you explain AI?"))
