"""Small helpers that several layers need, each written once.

- :mod:`starnode.util.fsio` - atomic writes, owner-only files and folders, JSON lines
- :mod:`starnode.util.proc` - is a process alive
- :mod:`starnode.util.memory` - freed work buffers kept for the next frame (glibc thresholds)
- :mod:`starnode.util.values` - finite-number coercion, star-name normalising
- :mod:`starnode.util.http` - one HTTP session (timeouts, retries honouring Retry-After,
  User-Agent) used by every network client
"""
