import os

from openai import OpenAI

DATABRICKS_TOKEN = os.environ.get("DATABRICKS_TOKEN")
DATABRICKS_HOST = os.environ.get("DATABRICKS_HOST")

client = OpenAI(api_key=DATABRICKS_TOKEN, base_url=f"{DATABRICKS_HOST}/serving-endpoints")

completion = client.completions.create(
    model=os.environ["ENDPOINT_NAME"],
    prompt="Write 3 reasons why you should train an AI model on domain specific data sets.",
    temperature=0.1,
)

print(completion.choices[0].text)
