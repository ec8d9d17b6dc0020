"""Named guest CPU models (libvirt's x86 cpu_map): which this host, or a fleet, can run."""
