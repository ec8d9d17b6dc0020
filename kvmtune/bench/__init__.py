"""kvmtune bench: measure, through KVM itself, what the tuning buys on this host."""
