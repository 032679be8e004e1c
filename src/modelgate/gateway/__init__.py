"""AI Gateway features that act on queries: usage tracking, inference tables, rate limits."""
