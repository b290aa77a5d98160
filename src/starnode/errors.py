"""One vocabulary for what can go wrong, and for the states things are in.

Every exception starnode raises on purpose derives from :class:`StarnodeError`, so a caller
(the node, the CLI, a user's script around the seed API) can catch "anything starnode refused"
in one clause while programming errors still surface as themselves. Categories, states and
statuses are :class:`enum.StrEnum` members: they compare equal to their string values, so they
are stored in SQLite and JSON as plain text and old rows written as bare strings still match.

The concrete exception classes live here, not beside the code that raises them, so that a
process boundary (a pool worker pickling its exception) and a test that raises them need only
this module.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "LEGACY_CATEGORIES",
    "AavsoError",
    "AstrometryError",
    "CatalogError",
    "ConfigError",
    "CredentialsError",
    "FieldError",
    "FrameRejected",
    "FrameState",
    "NodeBusy",
    "QualityFlag",
    "RejectCategory",
    "StarnodeError",
    "StoreError",
    "SubmitStatus",
]


class RejectCategory(StrEnum):
    """Why a frame was not measured (``FrameRejected.category``, the ledger's ``category``)."""

    NOT_LIGHT = "not_light"
    UNREADABLE = "unreadable"
    IMPLAUSIBLE = "implausible"
    TOO_LARGE = "too_large"
    NO_TARGET = "no_target"
    ASTROMETRY = "astrometry"
    CATALOG = "catalog"
    SATURATED = "saturated"
    EDGE = "edge"
    LOW_SNR = "low_snr"
    TOO_FEW_COMPS = "too_few_comps"
    CONFIG = "config"
    VANISHED = "vanished"
    REWRITTEN = "rewritten"
    NOT_A_FILE = "not_a_file"
    BAD_NAME = "bad_name"
    CRASHED = "crashed"
    TIMEOUT = "timeout"
    ERROR = "error"

    @classmethod
    def parse(cls, value: str) -> RejectCategory:
        """The category a stored or given text stands for (the ledger reads and writes this).

        ``crash``, written by 0.2.0 for a crashed worker, is :attr:`CRASHED`.

        Raises
        ------
        ValueError
            Not a category.

        Examples
        --------
        >>> RejectCategory.parse("crash") is RejectCategory.CRASHED
        True
        >>> RejectCategory.parse("not_light")
        <RejectCategory.NOT_LIGHT: 'not_light'>
        """
        return cls(LEGACY_CATEGORIES.get(value, value))


#: Category texts that older versions wrote, and what they mean now.
LEGACY_CATEGORIES = {"crash": "crashed"}


class FrameState(StrEnum):
    """Where a frame is in the node's ledger."""

    PENDING = "pending"
    PROCESSING = "processing"
    MEASURED = "measured"
    REPORTED = "reported"
    SKIPPED = "skipped"
    FAILED = "failed"


class SubmitStatus(StrEnum):
    """The ``status`` of :func:`starnode.aavso.submit`'s answer."""

    QUEUED = "queued"
    DRY_RUN = "dry_run"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    ERROR = "error"


class QualityFlag(StrEnum):
    """A measurement's overall quality (``Measurement.quality_flag``)."""

    GOOD = "good"
    ACCEPTABLE = "acceptable"
    POOR = "poor"


class StarnodeError(Exception):
    """Base of every error starnode raises on purpose."""


class ConfigError(StarnodeError, ValueError):
    """The configuration is invalid; the message names the key and the fix."""


class StoreError(StarnodeError, RuntimeError):
    """The data directory's database cannot be used (too new, corrupt, replaced, read-only)."""


class CatalogError(StarnodeError, RuntimeError):
    """A target or comparison sequence cannot be had (unknown star, network, bad file).

    ``kind`` names the kind of failure in words that do not change from one frame to the next
    (``offline``, ``HTTP 503``, ``connection failed (NewConnectionError)``), so a warning about
    it can be said once an hour; None when not known.
    """

    kind: str | None = None

    def __init__(self, *args: object, kind: str | None = None) -> None:
        super().__init__(*args)
        self.kind = kind


class AstrometryError(StarnodeError, RuntimeError):
    """No verified WCS for a frame."""


class AavsoError(StarnodeError, RuntimeError):
    """A report cannot be produced (e.g. ``report_text`` finds no rows)."""


class FieldError(StarnodeError, ValueError):
    """A value does not fit its AAVSO report field (never cut: refused)."""


class CredentialsError(StarnodeError, RuntimeError):
    """WebObs credentials are missing or unusable."""


class NodeBusy(StarnodeError, RuntimeError):
    """Another node already holds this data directory."""


class FrameRejected(StarnodeError):
    """A frame that cannot or must not be measured; ``category`` says which kind of reason.

    Parameters
    ----------
    reason : str
        A sentence for the log and ``starnode status``.
    category : RejectCategory or str
        The kind of reason (a :class:`RejectCategory` value).

    Examples
    --------
    >>> err = FrameRejected("the target is outside the frame", "no_target")
    >>> err.category is RejectCategory.NO_TARGET, str(err)
    (True, 'the target is outside the frame')

    A category this version does not know is kept as given (a newer worker's), and the
    exception survives the trip back from a worker process:

    >>> import pickle
    >>> FrameRejected("the Sun is up", "sunrise").category
    'sunrise'
    >>> pickle.loads(pickle.dumps(err)).category
    <RejectCategory.NO_TARGET: 'no_target'>
    """

    def __init__(self, reason: str, category: RejectCategory | str) -> None:
        super().__init__(reason)
        self.reason = reason
        try:
            self.category: RejectCategory | str = RejectCategory(category)
        except ValueError:
            self.category = category

    def __reduce__(self) -> tuple[type[FrameRejected], tuple[str, str]]:
        return (FrameRejected, (self.reason, str(self.category)))
