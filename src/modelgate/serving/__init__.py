"""Serving: endpoint runtimes, traffic split, dispatch of queries to served entities."""
