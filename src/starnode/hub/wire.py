"""The hub's wire format: what a node sends, checked field by field before anything is stored.

Why a typed model and not "whatever JSON the node sends": the hub writes AAVSO rows under a
member's observer code from these records, so a name with a comma or a line break, a magnitude
of 99 or a JD in the wrong century must be refused at the door with the field named (HTTP 422),
never discovered in a report. The keys are those of :meth:`starnode.records.Measurement.to_dict`
(built by :func:`starnode.node.forwarder.wire_measurement`), so a stored payload is itself a
measurement dict that :func:`starnode.aavso.measurement_from_result` turns into a row; the
record's ``schema_version`` (:data:`starnode.records.SCHEMA_VERSION`) is carried by every batch
and every record, so a hub refuses what it does not understand instead of guessing. Version 1
(the 0.1.0 dict: no site, no night) is still read; the hub then derives the night from the JD
and the longitude, if any.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StringConstraints,
    field_validator,
    model_validator,
)

from ..aavso.entries import clean_name
from ..aavso.spec import FILTER_CODES, JD_RANGE
from ..errors import FieldError
from ..records import SCHEMA_VERSION, consistency_problems

__all__ = ["SCHEMA_VERSION", "SUPPORTED_VERSIONS", "AlertAck", "AssignmentAck", "Batch",
           "Heartbeat", "Instrument", "Limits", "MeasurementIn", "Site", "StarRequest",
           "Weather"]

#: The versions this hub accepts.
SUPPORTED_VERSIONS = frozenset(range(1, SCHEMA_VERSION + 1))
MAG_RANGE = (-2.0, 30.0)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@functools.lru_cache(maxsize=8192)
def _clean(value: str, field: str) -> str | FieldError:
    """:func:`clean_name`, remembered: a network sends the same comp and chart names in
    every record (the answer, or the error, depends only on the arguments)."""
    try:
        return clean_name(value, field)
    except FieldError as exc:
        return exc


#: Printable text: no NUL, no control character (a heartbeat's or a record's free text must
#: not reach a database as a NUL, nor an operator's terminal as an escape sequence).
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
#: Free text that may span lines (an error message): tab and line feed allowed, no NUL.
_MULTILINE = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"


Text8 = Annotated[str, StringConstraints(max_length=8, pattern=_PRINTABLE)]
Text16 = Annotated[str, StringConstraints(max_length=16, pattern=_PRINTABLE)]
Text32 = Annotated[str, StringConstraints(max_length=32, pattern=_PRINTABLE)]
Text64 = Annotated[str, StringConstraints(max_length=64, pattern=_PRINTABLE)]
Text100 = Annotated[str, StringConstraints(max_length=100, pattern=_PRINTABLE)]
Text200 = Annotated[str, StringConstraints(max_length=200, pattern=_PRINTABLE)]
Text300 = Annotated[str, StringConstraints(max_length=300, pattern=_PRINTABLE)]
Lines500 = Annotated[str, StringConstraints(max_length=500, pattern=_MULTILINE)]


def _name(field: str) -> Any:
    """A report field that must stay one field: no comma, ``|``, ``#``, line break or
    non-ASCII (the same rule as the node's report writer)."""
    def check(value: str | None) -> str | None:
        if value is None or value == "":
            return None
        out = _clean(value, field) if len(value) <= 64 else _clean.__wrapped__(value, field)
        if isinstance(out, FieldError):
            raise ValueError(str(out))
        return out
    return AfterValidator(check)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


#: A name that goes into a report field: at most 64 characters (the database's column and
#: far more than any AAVSO name), checked by :func:`_name`.
Name = Annotated[Annotated[str, StringConstraints(max_length=64)] | None, _name("NAME")]
#: A number: finite, and never ``true`` (a JSON boolean is not a magnitude).
Num = Annotated[StrictFloat | None, AfterValidator(_finite)]
Float = StrictFloat
#: An error: finite and never negative.
Err = Annotated[StrictFloat | None, Field(ge=0.0), AfterValidator(_finite)]


class _Model(BaseModel):
    # Unknown keys of the same schema version are ignored (a newer node may add a diagnostic);
    # the known ones are strictly typed.
    # NaN and Infinity are refused in every number (PostgreSQL's JSON cannot hold them).
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class Comp(_Model):
    name: Name = None
    auid: Name = None
    label: Name = None
    catalog_mag: Num = None
    catalog_err: Err = None
    instrumental_mag: Num = None
    residual: Num = None
    used: StrictBool = False


class CheckStar(_Model):
    name: Name = None
    label: Name = None
    auid: Name = None
    mag: Num = None
    catalog_mag: Num = None
    instrumental_mag: Num = None
    deviation: Num = None
    error: Err = None


class MeasurementIn(_Model):
    """One measurement as a node sends it (about 1 KB of JSON)."""

    schema_version: int = SCHEMA_VERSION
    target_name: Annotated[Annotated[str, StringConstraints(max_length=64)],
                           _name("STARID")]
    auid: Name = None
    filter: Text8
    band: Text8 | None = None
    jd: Float = Field(ge=JD_RANGE[0], le=JD_RANGE[1])
    hjd: Float | None = Field(default=None, ge=JD_RANGE[0], le=JD_RANGE[1])
    magnitude: Float = Field(ge=MAG_RANGE[0], le=MAG_RANGE[1])
    uncertainty: Float = Field(gt=0.0, le=5.0)
    quality_flag: Literal["good", "acceptable", "poor"]
    quality_reasons: list[Text200] = Field(default_factory=list, max_length=20)
    transformed: StrictBool = False
    comparison_stars: int = Field(ge=0, le=500, strict=True)
    comps: list[Comp] = Field(default_factory=list, max_length=100)
    check_star: CheckStar | None = None
    chart_id: Annotated[str | None, _name("CHART")] = None
    sequence_source: Literal["vsp", "gaia-dr3"] = "vsp"
    airmass: Float | None = Field(default=None, ge=1.0, le=40.0)
    exptime: Float | None = Field(default=None, gt=0.0, le=86400.0)
    instrumental_mag: Num = None
    time_uncertainty_s: Err = None
    snr: Num = None
    fwhm_arcsec: Num = None
    zero_point: Num = None
    zp_error: Err = None
    frame_kind: Text16 | None = None
    file: Annotated[str, Field(min_length=1, max_length=200)]
    frame_sha256: Annotated[str, Field(max_length=64)]
    telescope: Text100 | None = None
    synthetic: StrictBool = False
    site_longitude: Float | None = Field(default=None, ge=-180.0, le=360.0)
    site_latitude: Float | None = Field(default=None, ge=-90.0, le=90.0)
    site_height: Float | None = Field(default=None, ge=-500.0, le=10000.0)
    night: Annotated[str, Field(max_length=10)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MeasurementIn:
        """The cross-field rules of :func:`starnode.records.consistency_problems` (the
        errors' signs are the fields' own limits: checked by pydantic, faster)."""
        problems = consistency_problems({"jd": self.jd, "hjd": self.hjd, "night": self.night,
                                         "site_longitude": self.site_longitude})
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("night")
    @classmethod
    def _night(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("must be the observing night as YYYY-MM-DD") from None

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in FILTER_CODES:
            raise ValueError(f"{value!r} is not an AAVSO filter code")
        return code

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if any(c in value for c in "/\\\r\n,|#") or not value.isprintable():
            raise ValueError("must be a bare file name (no folders, commas, '|', '#' or line "
                             "breaks)")
        return value

    @field_validator("frame_sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("must be the SHA-256 of the frame file: 64 lowercase hex digits")
        return value

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(f"schema_version {value} is not supported by this hub "
                             f"(it knows {sorted(SUPPORTED_VERSIONS)})")
        return value

    def result(self) -> dict[str, Any]:
        """The record as a plain dict (what the hub stores, as JSON).

        Returns
        -------
        dict
            :meth:`starnode.records.Measurement.to_dict`'s keys that travelled.
        """
        return self.model_dump(mode="json")


class Batch(_Model):
    """A push: several measurements of one node."""

    schema_version: int
    node: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
    measurements: list[MeasurementIn] = Field(min_length=1, max_length=1000)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return MeasurementIn._version(value)


class Site(_Model):
    """Where a node's telescope stands (from its ``site:`` configuration)."""

    latitude: Float = Field(ge=-90.0, le=90.0)
    longitude: Float = Field(ge=-180.0, le=360.0)
    height: Float = Field(default=0.0, ge=-500.0, le=9000.0)


class Limits(_Model):
    """What the node's own planner gates on (its ``telescope:`` section): the allocation never
    assigns a target the node would refuse."""

    sun_limit: Float = Field(default=-12.0, ge=-30.0, le=0.0)
    min_altitude: Float = Field(default=30.0, ge=0.0, le=89.0)
    max_altitude: Float = Field(default=80.0, ge=1.0, le=90.0)
    #: ``[[azimuth, altitude], ...]`` where trees and houses are (degrees).
    horizon: list[tuple[float, float]] = Field(default_factory=list, max_length=360)

    @field_validator("horizon")
    @classmethod
    def _horizon(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for az, alt in value:
            if not (0.0 <= az <= 360.0 and 0.0 <= alt <= 90.0):
                raise ValueError(f"horizon point [{az}, {alt}]: azimuth must be 0..360 and "
                                 "altitude 0..90 degrees")
        return sorted(value)

    @model_validator(mode="after")
    def _order(self) -> Limits:
        if self.min_altitude >= self.max_altitude:
            raise ValueError(f"min_altitude {self.min_altitude} must be below max_altitude "
                             f"{self.max_altitude}")
        return self


class Instrument(_Model):
    """The telescope model and the magnitudes it can measure (brightest unsaturated, faintest
    with enough signal)."""

    model: Text64 | None = None
    bright_limit: Float | None = Field(default=None, ge=MAG_RANGE[0], le=MAG_RANGE[1])
    faint_limit: Float | None = Field(default=None, ge=MAG_RANGE[0], le=MAG_RANGE[1])

    @model_validator(mode="after")
    def _order(self) -> Instrument:
        if (self.bright_limit is not None and self.faint_limit is not None
                and self.bright_limit >= self.faint_limit):
            raise ValueError(f"bright_limit {self.bright_limit} must be brighter (smaller) "
                             f"than faint_limit {self.faint_limit}")
        return self


class Weather(_Model):
    """A weather veto: a fact (rain, clouds, wind), never a score. ``veto`` true: the node
    gets nothing tonight and its wishes move to other nodes."""

    veto: StrictBool
    reason: Text200 | None = None


class Heartbeat(_Model):
    """A node's state, about once a minute: what an operator needs to spot a sick node.

    ``site``, ``limits``, ``instrument`` and ``weather`` (all optional: a node without them
    still works, it is only not planned for) are what the nightly allocation needs;
    ``assignment`` is the hash of the assignment the node holds.
    """

    schema_version: int = SCHEMA_VERSION
    node: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
    version: Text64
    watch_mode: Text64 | None = None
    last_frame: Text300 | None = None
    last_frame_time: Float | None = Field(default=None, ge=0.0, le=1e11)
    queue_length: int = Field(ge=0, le=10**9, strict=True)
    free_disk_gb: Float | None = Field(default=None, ge=0.0, le=1e9)
    frames: dict[Text32, Annotated[int, Field(ge=0, le=10**9, strict=True)]] = Field(
        default_factory=dict, max_length=32)
    recent_errors: list[Lines500] = Field(default_factory=list, max_length=20)
    site: Site | None = None
    limits: Limits | None = None
    instrument: Instrument | None = None
    weather: Weather | None = None
    assignment: Text64 | None = None

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return MeasurementIn._version(value)


def _utc(value: str) -> str:
    """An ISO 8601 time with its offset, as UTC ``...Z`` (a time without one is refused)."""
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 time such as 2025-09-14T21:30:00Z") from None
    if t.tzinfo is None:
        raise ValueError("must carry its UTC offset ('Z'): local times are ambiguous")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


UtcTime = Annotated[str, Field(max_length=40), AfterValidator(_utc)]


def _date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError("must be a date YYYY-MM-DD") from None


class AssignmentAck(_Model):
    """A node's answer to an assignment: ``applied`` (in its journal, ``at``) or
    ``refused`` with the reason."""

    node: Annotated[str, Field(min_length=1, max_length=64)]
    night: Annotated[str, AfterValidator(_date)]
    hash: Annotated[str, Field(min_length=1, max_length=64)]
    status: Literal["applied", "refused"]
    at: UtcTime
    reason: str | None = Field(default=None, max_length=500)


class AlertAck(_Model):
    """A node's answer to an alert: ``scheduled`` at ``at``, or ``refused`` and why."""

    node: Annotated[str, Field(min_length=1, max_length=64)]
    status: Literal["scheduled", "refused"]
    at: UtcTime
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _why(self) -> AlertAck:
        if self.status == "refused" and not (self.reason or "").strip():
            raise ValueError("a refusal needs its reason")
        return self


class StarRequest(_Model):
    """A member asks the network for a star (``starnode hub request``, the hub's page)."""

    star: Annotated[str, Field(min_length=1, max_length=64), _name("STARID")]
    member: Annotated[str, Field(min_length=1, max_length=16)]
    until: Annotated[str, AfterValidator(_date)] | None = None
    ra: float | None = Field(default=None, ge=0.0, lt=360.0)
    dec: float | None = Field(default=None, ge=-90.0, le=90.0)

    @field_validator("member")
    @classmethod
    def _member(cls, value: str) -> str:
        code = value.strip().upper()
        if not code.isascii() or not code.isalnum():
            raise ValueError(f"{value!r} is not an AAVSO observer code (letters and digits)")
        return code
