"""The starnode hub: many telescopes, one trustworthy record per member.

Nodes push their measurements (:mod:`.client`, store and forward, exactly once) to the hub
(:mod:`.app`, FastAPI over SQLAlchemy Core, :mod:`.db`), which cross-checks telescopes that
observed the same star at the same time (:mod:`.consensus`) and writes each member's AAVSO
reports under their own observer code (:mod:`.reports`). ``starnode hub ...`` is :mod:`.cli`.
The wire format is :mod:`.wire`. See docs/hub.md.
"""

#: The version of the wire records (:mod:`.wire`) this code writes. Here, not in :mod:`.wire`,
#: so the node side (:mod:`.client`) needs no pydantic.
SCHEMA_VERSION = 1
