import os

from openai import OpenAI

DATABRICKS_TOKEN = os.environ.get("DATABRICKS_TOKEN")
DATABRICKS_HOST = os.environ.get("DATABRICKS_HOST")

client = OpenAI(api_key=DATABRICKS_TOKEN, base_url=f"{DATABRICKS_HOST}/serving-endpoints")

response = client.chat.completions.create(
    model=os.environ["ENDPOINT_NAME"],
    messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is a mixture of experts model?"},
    ],
    max_tokens=256,
)

print(response.choices[0].message.content)
