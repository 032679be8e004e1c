"""Wire models: what clients send and receive, validated at the boundary."""
