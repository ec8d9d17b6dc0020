"""kvmtune: KVM host readiness checks and tuning."""

__version__ = "0.1.0"
