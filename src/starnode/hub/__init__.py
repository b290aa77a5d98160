"""The starnode hub: many telescopes, one trustworthy record per member.

Nodes push their measurements (:mod:`starnode.node.forwarder`, store and forward, exactly once)
to the hub (:mod:`.app`, FastAPI over SQLAlchemy Core, :mod:`.db`), which cross-checks telescopes
that observed the same star at the same time (:mod:`.consensus`) and writes each member's AAVSO
reports under their own observer code (:mod:`.reports`). ``starnode hub ...`` is :mod:`.cli`.
The wire format is :mod:`.wire`: the typed :class:`starnode.records.Measurement`'s dict form,
so its version is :data:`starnode.records.SCHEMA_VERSION`. See docs/hub.md.
"""

from ..records import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
