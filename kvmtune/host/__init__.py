"""The one door to the host: rooted paths, bounded reads, owned writes, mounts and processes.

Nothing below this package but kvmtune's base types (errors, records, grammars). ``door.Host``
reads; ``writable.WritableHost`` adds the changes the tuning engine may make, within what
``owned`` allows; ``atomic`` replaces files whole; ``cpulist`` parses the kernel's CPU lists.
"""
