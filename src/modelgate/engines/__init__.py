"""Models hosted by modelgate itself: the local model catalog (`system.ai.<name>`) and its engines.

Nothing here imports torch at module import time; engines load it in their loader threads.
"""
