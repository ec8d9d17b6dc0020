"""Many hosts at once: their collected results read fast, and what the fleet can do together."""
