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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ..aavso.entries import clean_name
from ..aavso.spec import FILTER_CODES, JD_RANGE
from ..errors import FieldError
from ..records import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SUPPORTED_VERSIONS", "Batch", "Heartbeat", "MeasurementIn"]

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


Name = Annotated[str | None, _name("NAME")]
Num = Annotated[float | None, AfterValidator(_finite)]


class _Model(BaseModel):
    # Unknown keys of the same schema version are ignored (a newer node may add a diagnostic);
    # the known ones are strictly typed.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Comp(_Model):
    name: Name = None
    auid: Name = None
    label: Name = None
    catalog_mag: Num = None
    catalog_err: Num = None
    instrumental_mag: Num = None
    residual: Num = None
    used: bool = False


class CheckStar(_Model):
    name: Name = None
    label: Name = None
    auid: Name = None
    mag: Num = None
    catalog_mag: Num = None
    instrumental_mag: Num = None
    deviation: Num = None
    error: Num = None


class MeasurementIn(_Model):
    """One measurement as a node sends it (about 1 KB of JSON)."""

    schema_version: int = SCHEMA_VERSION
    target_name: Annotated[str, _name("STARID")]
    auid: Name = None
    filter: str
    band: str | None = None
    jd: float = Field(ge=JD_RANGE[0], le=JD_RANGE[1])
    hjd: float | None = Field(default=None, ge=JD_RANGE[0], le=JD_RANGE[1])
    magnitude: float = Field(ge=MAG_RANGE[0], le=MAG_RANGE[1])
    uncertainty: float = Field(gt=0.0, le=5.0)
    quality_flag: Literal["good", "acceptable", "poor"]
    quality_reasons: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list,
                                                                         max_length=20)
    transformed: bool = False
    comparison_stars: int = Field(ge=0, le=500)
    comps: list[Comp] = Field(default_factory=list, max_length=100)
    check_star: CheckStar | None = None
    chart_id: Annotated[str | None, _name("CHART")] = None
    sequence_source: Literal["vsp", "gaia-dr3"] = "vsp"
    airmass: float | None = Field(default=None, ge=1.0, le=40.0)
    exptime: float | None = Field(default=None, gt=0.0, le=86400.0)
    instrumental_mag: Num = None
    time_uncertainty_s: Num = None
    snr: Num = None
    fwhm_arcsec: Num = None
    zero_point: Num = None
    zp_error: Num = None
    frame_kind: str | None = Field(default=None, max_length=16)
    file: Annotated[str, Field(min_length=1, max_length=200)]
    frame_sha256: str
    telescope: str | None = Field(default=None, max_length=100)
    synthetic: bool = False
    site_longitude: float | None = Field(default=None, ge=-180.0, le=360.0)
    site_latitude: float | None = Field(default=None, ge=-90.0, le=90.0)
    site_height: float | None = Field(default=None, ge=-500.0, le=10000.0)
    night: str | None = None

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
    node: Annotated[str, Field(min_length=1, max_length=64)]
    measurements: list[MeasurementIn] = Field(min_length=1, max_length=1000)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return MeasurementIn._version(value)


class Heartbeat(_Model):
    """A node's state, about once a minute: what an operator needs to spot a sick node."""

    schema_version: int = SCHEMA_VERSION
    node: Annotated[str, Field(min_length=1, max_length=64)]
    version: str = Field(max_length=64)
    watch_mode: str | None = Field(default=None, max_length=64)
    last_frame: str | None = Field(default=None, max_length=300)
    last_frame_time: float | None = None
    queue_length: int = Field(ge=0)
    free_disk_gb: float | None = None
    frames: dict[str, int] = Field(default_factory=dict)
    recent_errors: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list,
                                                                       max_length=20)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return MeasurementIn._version(value)
