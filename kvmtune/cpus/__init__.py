"""CPU partitioning: the host's cores and nodes, and the split between host and pinned guests."""
