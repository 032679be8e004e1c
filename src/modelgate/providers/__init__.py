"""External model providers: one module per provider, registered in `registry.py`."""
