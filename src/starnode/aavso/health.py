"""The AAVSO writer's lines of ``starnode doctor`` (collected by :mod:`starnode.doctor`).

The writer knows best what it needs: where reports go and, in webobs mode, credentials it can
actually use (the same :func:`~starnode.aavso.webobs.load_credentials` the upload calls, so a
group-readable credentials file fails here too, before a night's uploads do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starnode.errors import CredentialsError

from .outbox import outbox_dir
from .webobs import load_credentials

if TYPE_CHECKING:
    from starnode.config import Config
    from starnode.diagnostics import Check

__all__ = ["health"]


def health(cfg: Config) -> list[Check]:
    """Where reports go; in webobs mode, whether usable credentials exist (never shown).

    Parameters
    ----------
    cfg : Config
        The resolved configuration.

    Returns
    -------
    list of Check
        One line, topic ``aavso``.
    """
    from starnode.diagnostics import Check, Level

    a = cfg.aavso
    if a.mode != "webobs":
        return [Check(Level.OK, "aavso", f"mode {a.mode}: reports go to {outbox_dir(cfg)}")]
    try:
        load_credentials(cfg)
    except CredentialsError as exc:
        return [Check(Level.FAIL, "aavso", f"aavso.mode is webobs but {exc}")]
    return [Check(Level.OK, "aavso", "webobs upload enabled, credentials present (not shown)")]
