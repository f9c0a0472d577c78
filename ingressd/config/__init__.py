"""Configuration: the object store, translation of Kubernetes objects into the immutable model,
the route table and its entries, and the reloader that swaps a new table in."""
