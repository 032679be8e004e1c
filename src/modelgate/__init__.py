"""modelgate: self-hosted model serving behind the Databricks serving-endpoint API and the OpenAI API."""

__version__ = "0.1.0"
