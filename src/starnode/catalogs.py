"""Targets and comparison-star sequences: AAVSO VSX and VSP, the Gaia DR3 fallback, their cache.

Public API (see ``docs/catalogs.md``)::

    resolve_target(config, object_name, ra_deg, dec_deg) -> Target
    get_sequence(config, target, *, fov_arcmin, band="V") -> Sequence
    CatalogError

What is asked where:

- VSX ``api.object`` (``photometry.vsx_url``): the target's AAVSO name, AUID, type and range;
  VSX ``api.list`` (cone search) when OBJECT is ``Unknown`` or absent.
- VSP ``chart`` (``photometry.vsp_url``): the comparison sequence of the field, with its chart id.
- Gaia DR3 through the archive's TAP sync service (``photometry.gaia_tap_url``), only when VSP has
  no sequence for the field (``photometry.gaia_fallback``); V from G and BP-RP (Riello et al. 2021).

Every answer is cached in the node's SQLite database (``config.db_path``, table
``catalog_cache``) for ``photometry.cache_days``; a stale entry is used, with a WARNING, when the
network fails, and ``photometry.offline`` uses only the cache, ``photometry.sequence_file`` and the
bundled charts in ``starnode/data``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from starnode import __version__
from starnode.config import Config, resolve
from starnode.db import connect

log = logging.getLogger(__name__)

__all__ = [
    "GAIA_G_MINUS_V",
    "USER_AGENT",
    "CatalogError",
    "CompStar",
    "Sequence",
    "Target",
    "VsxMag",
    "clear_cache",
    "comment_flag",
    "gaia_g_to_v",
    "gaia_sequence",
    "get_sequence",
    "load_sequence_file",
    "normalize_name",
    "parse_dec",
    "parse_gaia_csv",
    "parse_ra",
    "parse_vsp_chart",
    "parse_vsx_list",
    "parse_vsx_mag",
    "parse_vsx_object",
    "resolve_target",
    "vsp_sequence",
    "vsx_cone",
    "vsx_object",
]

#: VSP band names -> AAVSO report filter letters (the report says R and I, VSP says Rc and Ic).
VSP_BANDS = {"V": "V", "B": "B", "U": "U", "Rc": "R", "Ic": "I", "R": "R", "I": "I",
             "J": "J", "H": "H", "K": "K", "SG": "SG", "SR": "SR", "SI": "SI"}

#: ``User-Agent`` of every catalogue request: AAVSO and ESA can see who asks, and which version.
USER_AGENT = f"starnode/{__version__} (+https://github.com/starnode/starnode)"

#: OBJECT values that name no star (the Seestar writes "Unknown" for a manual goto).
_NO_NAME = {"", "unknown", "none", "null", "n/a", "na", "object", "target"}

#: Longest wait between two attempts, whatever Retry-After says (an unattended node must go on).
_MAX_RETRY_DELAY_S = 60.0

# --- comparison-star comments ----------------------------------------------------------------
# The rule was set on the real VSP comments in shared/data (vsp/*.json, aavso-api/*.json):
#   "This star is a micro-variable. DSCT, 12.285 - 12.303V. Do not use as a CCD comparison star."
#       -> excluded (variable, and "do not use")
#   "Suspected variable NSV 2386. Acceptable to use."  -> kept: the sequence team says so
#   "BINO_COMP", "BINO_COMP      ", "#", "", "  ", None  -> not flags (kept)
# A comment excludes a comp when it says not to use it, or calls it variable without saying it
# is acceptable to use. Words like "double", "blend" or "suspect(ed)" alone exclude nothing.
_UNUSABLE = re.compile(r"\b(?:do\s+not|don'?t|never|not\s+to)\s+use\b|\bunusable\b|"
                       r"\bnot\s+(?:suitable|recommended|usable)\b|\bavoid\b", re.IGNORECASE)
_VARIABLE = re.compile(r"\b(?:micro-?)?variab(?:le|ility)\b|\bvar\b|\bNSV\s*\d+",
                       re.IGNORECASE)
_ACCEPTED = re.compile(r"\b(?:acceptable|ok|okay|fine|safe)\s+(?:to|for)\s+use\b|"
                       r"\b(?:may|can)\s+be\s+used\b", re.IGNORECASE)


def comment_flag(comment: str | None) -> str | None:
    """Why a VSP comment makes a comparison star unusable, or None when it does not."""
    text = " ".join(str(comment or "").split())
    if not text:
        return None
    if _UNUSABLE.search(text):
        return f"sequence comment says not to use it: {text!r}"
    if _VARIABLE.search(text) and not _ACCEPTED.search(text):
        return f"sequence comment marks it variable: {text!r}"
    return None


class CatalogError(RuntimeError):
    """A target or sequence could not be had (offline, unknown star, bad answer)."""


class _HTTPStatusError(CatalogError):
    """A catalogue server answered with a 4xx status (not retried)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """The variable star a frame is measured for."""

    name: str  # as AAVSO spells it (VSX / the VSP chart), else as given
    ra_deg: float
    dec_deg: float
    auid: str | None = None
    var_type: str | None = None
    max_mag: str | None = None  # as VSX gives it, with its band: "3.96 V"
    min_mag: str | None = None  # "4.11 V", or an amplitude "(0.20) V"
    source: str = "header"  # vsx | sequence | config | header
    period_days: float | None = None


@dataclass(frozen=True)
class VsxMag:
    """A VSX magnitude field: ``"3.96 V"``, ``"(0.20) V"`` (an amplitude), ``"<15.5 V"``."""

    value: float
    band: str | None
    amplitude: bool = False
    fainter_than: bool = False


def parse_vsx_mag(text: str | None) -> VsxMag | None:
    """Parse a VSX ``MaxMag``/``MinMag`` string; None when empty or not a magnitude."""
    if not text or not str(text).strip():
        return None
    m = re.fullmatch(r"\s*(<|>)?\s*(\()?\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*(\))?\s*:?\s*"
                     r"([A-Za-z][A-Za-z0-9_]*)?\s*", str(text))
    if not m:
        return None
    return VsxMag(value=float(m.group(3)), band=m.group(5),
                  amplitude=bool(m.group(2) and m.group(4)), fainter_than=m.group(1) == "<")


@dataclass(frozen=True)
class CompStar:
    """One comparison star of a sequence, with its magnitudes by report band."""

    label: str
    ra_deg: float
    dec_deg: float
    mags: Mapping[str, tuple[float, float]]  # band ("V", "B", "R", ...) -> (mag, error)
    auid: str | None = None
    comments: str = ""

    @property
    def name(self) -> str:
        """How the report names it: the AUID when there is one, else the chart label."""
        return self.auid or self.label

    def mag(self, band: str) -> tuple[float, float] | None:
        return self.mags.get(band)

    @property
    def flag_reason(self) -> str | None:
        """Why the sequence's comment excludes this comp (see :func:`comment_flag`), or None."""
        return comment_flag(self.comments)

    @property
    def flagged(self) -> bool:
        """True when the sequence's comment marks it as variable or otherwise unusable."""
        return self.flag_reason is not None


@dataclass(frozen=True)
class Sequence:
    """A comparison sequence for one field.

    ``source`` is ``"vsp"`` for an AAVSO VSP chart (``chart_id`` set), ``"gaia-dr3"`` for the
    Gaia fallback (``chart_id`` None). Comps of different sources are never mixed.
    """

    source: str
    comps: tuple[CompStar, ...]
    chart_id: str | None = None
    star: str | None = None
    star_auid: str | None = None
    star_ra_deg: float | None = None
    star_dec_deg: float | None = None
    fov_arcmin: float | None = None
    maglimit: float | None = None
    origin: str = ""  # where it came from: a file path, a URL, "cache"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def usable(self, band: str) -> list[CompStar]:
        """Comps with a magnitude in ``band`` and not flagged in the sequence comments."""
        out = []
        for c in self.comps:
            reason = c.flag_reason
            if reason:
                log.debug("comp %s excluded: %s", c.name, reason)
                continue
            if c.mag(band) is None:
                continue
            out.append(c)
        return out


def parse_ra(value: str | float) -> float:
    """``"hh:mm:ss.ss"`` (or degrees as a number/str) -> degrees."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if ":" not in text and " " not in text:
        return float(text)
    h, m, s = (float(p) for p in re.split(r"[:\s]+", text))
    deg = 15.0 * (h + m / 60.0 + s / 3600.0)
    if not 0.0 <= deg < 360.0:
        raise ValueError(f"RA out of range: {value!r}")
    return deg


def parse_dec(value: str | float) -> float:
    """``"±dd:mm:ss.s"`` (or degrees) -> degrees."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if ":" not in text and " " not in text:
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    d, m, s = (abs(float(p)) for p in re.split(r"[:\s]+", text.lstrip("+-")))
    deg = sign * (d + m / 60.0 + s / 3600.0)
    if not -90.0 <= deg <= 90.0:
        raise ValueError(f"Dec out of range: {value!r}")
    return deg


def _parse_comp(entry: Mapping[str, Any]) -> CompStar:
    mags: dict[str, tuple[float, float]] = {}
    for b in entry.get("bands") or []:
        band = VSP_BANDS.get(str(b.get("band", "")).strip())
        mag = b.get("mag")
        if band is None or mag is None:
            continue
        err = b.get("error")
        err_f = float(err) if err is not None else math.nan
        mags[band] = (float(mag), err_f)
    label = str(entry.get("label") or "").strip()
    auid = (str(entry.get("auid")).strip() or None) if entry.get("auid") else None
    return CompStar(label=label or (auid or "?"), ra_deg=parse_ra(entry["ra"]),
                    dec_deg=parse_dec(entry["dec"]), mags=mags, auid=auid,
                    comments=str(entry.get("comments") or ""))


def parse_vsp_chart(data: Any, *, origin: str = "") -> Sequence:
    """Parse a VSP chart answer into a :class:`Sequence`.

    Accepts the API's JSON (``{"chartid", "star", "photometry": [...]}``), SeeVar's wrapper
    (``{"target", "chart", "comparison_stars"}``) and a bare list of photometry entries.
    Raises :class:`CatalogError` with the reason when the document is not a sequence.
    """
    try:
        if isinstance(data, list):
            entries, meta, target = data, {}, {}
        elif isinstance(data, Mapping) and "photometry" in data:
            entries, meta, target = data["photometry"], data, {}
        elif isinstance(data, Mapping) and "comparison_stars" in data:
            entries = data["comparison_stars"]
            meta = dict(data.get("chart") or {})
            target = dict(data.get("target") or {})
        else:
            raise CatalogError(f"not a VSP chart (no 'photometry' list){_at(origin)}")
        if not isinstance(entries, list):
            raise CatalogError(f"VSP chart 'photometry' is not a list{_at(origin)}")
        comps = tuple(_parse_comp(e) for e in entries)
        chart_id = meta.get("chartid") or meta.get("chart_id")
        star = meta.get("star") or target.get("star") or target.get("name")
        ra = target.get("ra_hms") or meta.get("ra")
        dec = target.get("dec_dms") or meta.get("dec")
        fov = meta.get("fov") or meta.get("fov_arcmin")
        maglimit = meta.get("maglimit")
        return Sequence(
            source="vsp",
            comps=comps,
            chart_id=str(chart_id).strip() if chart_id else None,
            star=str(star).strip() if star else None,
            star_auid=(target.get("auid") or meta.get("auid")) or None,
            star_ra_deg=parse_ra(ra) if ra else None,
            star_dec_deg=parse_dec(dec) if dec else None,
            fov_arcmin=float(fov) if fov else None,
            maglimit=float(maglimit) if maglimit else None,
            origin=origin,
        )
    except CatalogError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"malformed VSP chart{_at(origin)}: {exc!r}") from exc


def _at(origin: str) -> str:
    return f" in {origin}" if origin else ""


def load_sequence_file(path: str | Path) -> Sequence:
    """Read a local VSP chart JSON file (``photometry.sequence_file``)."""
    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read sequence file {p}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"sequence file {p} is not valid JSON: {exc}") from exc
    return parse_vsp_chart(data, origin=str(p))


# --- small helpers ----------------------------------------------------------------------------

def normalize_name(name: str) -> str:
    """Cache and comparison form of a star name: blanks collapsed, case folded (``"ss  cyg"``)."""
    return " ".join(str(name).split()).casefold()


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance (haversine), degrees."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = (math.sin((d2 - d1) / 2) ** 2
         + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2)
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


# --- HTTP ---------------------------------------------------------------------------------------

def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(text: str, limit: int = 200) -> str:
    one = " ".join(text.split())
    return one[:limit] + ("…" if len(one) > limit else "")


#: netloc -> (monotonic time until which it is not asked, why, wall time of the failure).
_unreachable: dict[str, tuple[float, str, float]] = {}


def _request(cfg: Config, method: str, url: str, *, what: str,
             params: Mapping[str, Any] | None = None,
             data: Mapping[str, Any] | None = None) -> requests.Response:
    """One polite catalogue request: timeout, User-Agent, retries with exponential backoff.

    Retried: timeouts, connection errors, HTTP 5xx and 429 (Retry-After honoured, at most 60 s).
    Not retried: other 4xx (:class:`_HTTPStatusError`). Raises :class:`CatalogError` at the end.
    A server that failed every attempt is not asked again (in this process) for
    ``photometry.http_quiet_minutes``, so a network outage does not stall every frame.
    """
    ph = cfg.photometry
    if ph.offline:
        raise CatalogError(f"{what}: photometry.offline is set, not asking {url}")
    host = urlsplit(url).netloc
    down = _unreachable.get(host)
    if down is not None:
        if time.monotonic() < down[0]:
            raise CatalogError(f"{what}: {host} failed {time.time() - down[2]:.0f} s ago "
                               f"({down[1]}); not asking it again before "
                               f"photometry.http_quiet_minutes = {ph.http_quiet_minutes:g} "
                               f"have passed")
        _unreachable.pop(host, None)
    attempts = int(ph.http_retries)
    timeout = float(ph.http_timeout)
    last = "no attempt"
    for attempt in range(1, attempts + 1):
        delay = float(ph.http_backoff) * 2 ** (attempt - 1)
        try:
            resp = requests.request(method, url, params=params, data=data, timeout=timeout,
                                    headers={"User-Agent": USER_AGENT,
                                             "Accept": "application/json, text/csv, */*"})
        except requests.Timeout:
            last = f"no answer within {timeout:g} s"
        except requests.ConnectionError as exc:
            last = f"connection failed ({type(exc).__name__})"
        except requests.RequestException as exc:
            raise CatalogError(f"{what}: cannot ask {url}: {exc}") from exc
        else:
            status = resp.status_code
            if status == 429 or 500 <= status < 600:
                last = f"HTTP {status}"
                wait = _retry_after(resp.headers.get("Retry-After"))
                if wait is not None:
                    delay = wait
            elif status >= 400:
                raise _HTTPStatusError(
                    f"{what}: HTTP {status} from {resp.url}: {_snippet(resp.text)!r}", status)
            else:
                return resp
        if attempt < attempts:
            delay = min(delay, _MAX_RETRY_DELAY_S)
            log.warning("%s: %s from %s (attempt %d of %d), retrying in %.1f s",
                        what, last, url, attempt, attempts, delay)
            time.sleep(delay)
    quiet_s = float(ph.http_quiet_minutes) * 60.0
    if quiet_s > 0:
        _unreachable[host] = (time.monotonic() + quiet_s, last, time.time())
    raise CatalogError(f"{what}: {last} from {url} after {attempts} attempt(s)")


def _get_json(cfg: Config, url: str, params: Mapping[str, Any], *, what: str) -> Any:
    resp = _request(cfg, "GET", url, params=params, what=what)
    try:
        return json.loads(resp.text)
    except ValueError as exc:
        raise CatalogError(f"{what}: the answer from {resp.url} is not JSON "
                           f"({exc}): {_snippet(resp.text)!r}") from exc


# --- the cache ----------------------------------------------------------------------------------

_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog_cache (
    kind       TEXT NOT NULL,   -- vsx | vsx-cone | vsp | gaia
    key        TEXT NOT NULL,   -- normalised request (name/coords, fov, maglimit)
    fetched_at REAL NOT NULL,   -- unix time of the answer
    url        TEXT,            -- where it came from
    payload    TEXT NOT NULL,   -- the answer, as JSON text
    PRIMARY KEY (kind, key)
)
"""


@dataclass(frozen=True)
class _Entry:
    payload: Any
    fetched_at: float
    url: str | None

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.fetched_at) / 86400.0)


def _cache_conn(cfg: Config) -> sqlite3.Connection:
    conn = connect(cfg.db_path)
    conn.execute(_CACHE_SCHEMA)
    return conn


def _cache_get(cfg: Config, kind: str, key: str) -> _Entry | None:
    try:
        conn = _cache_conn(cfg)
        try:
            row = conn.execute("SELECT payload, fetched_at, url FROM catalog_cache "
                               "WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("catalogue cache %s unreadable (%s); going without it", cfg.db_path, exc)
        return None
    if row is None:
        return None
    try:
        return _Entry(json.loads(row["payload"]), float(row["fetched_at"]), row["url"])
    except ValueError:
        log.warning("catalogue cache entry %s/%s is corrupt; ignored", kind, key)
        return None


def _cache_put(cfg: Config, kind: str, key: str, url: str | None, payload: Any) -> None:
    try:
        conn = _cache_conn(cfg)
        try:
            conn.execute("INSERT OR REPLACE INTO catalog_cache (kind, key, fetched_at, url, "
                         "payload) VALUES (?, ?, ?, ?, ?)",
                         (kind, key, time.time(), url, json.dumps(payload)))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("catalogue cache %s not writable (%s); answer not kept", cfg.db_path, exc)


def clear_cache(config: Any, kind: str | None = None) -> int:
    """Forget cached catalogue answers (all, or one ``kind``); returns how many were removed."""
    cfg = resolve(config)
    conn = _cache_conn(cfg)
    try:
        if kind is None:
            cur = conn.execute("DELETE FROM catalog_cache")
        else:
            cur = conn.execute("DELETE FROM catalog_cache WHERE kind = ?", (kind,))
        return int(cur.rowcount)
    finally:
        conn.close()


@dataclass(frozen=True)
class _Got:
    value: Any
    origin: str  # "network" | "cache" | "cache (stale)"
    url: str | None
    fetched_at: float


def _cached(cfg: Config, kind: str, key: str, *, what: str,
            fetch: Callable[[], tuple[Any, str]], parse: Callable[[Any], Any]) -> _Got:
    """A fresh cache entry, else the network (answer parsed, then kept), else a stale entry.

    ``fetch`` returns ``(raw JSON-able answer, url)``; ``parse`` turns it into the value and
    raises :class:`CatalogError` for an answer that must not be cached.
    """
    ph = cfg.photometry
    entry = _cache_get(cfg, kind, key)
    stale: tuple[_Entry, Any] | None = None
    if entry is not None:
        try:
            value = parse(entry.payload)
        except CatalogError as exc:
            log.warning("cached %s for %s unusable (%s); asking again", what, key, exc)
        else:
            if entry.age_days <= float(ph.cache_days):
                log.debug("%s for %s from the cache (%.1f days old)", what, key, entry.age_days)
                return _Got(value, "cache", entry.url, entry.fetched_at)
            stale = (entry, value)
    if ph.offline:
        if stale is not None:
            log.warning("offline: using the %s for %s cached %.1f days ago (older than "
                        "photometry.cache_days = %g)", what, key, stale[0].age_days,
                        ph.cache_days)
            return _Got(stale[1], "cache (stale)", stale[0].url, stale[0].fetched_at)
        raise CatalogError(f"{what} for {key}: photometry.offline is set and it is not cached")
    try:
        raw, url = fetch()
        value = parse(raw)
    except CatalogError as exc:
        if stale is None:
            raise
        log.warning("%s; using the %s for %s cached %.1f days ago instead", exc, what, key,
                    stale[0].age_days)
        return _Got(stale[1], "cache (stale)", stale[0].url, stale[0].fetched_at)
    _cache_put(cfg, kind, key, url, raw)
    return _Got(value, "network", url, time.time())


# --- VSX --------------------------------------------------------------------------------------

def parse_vsx_object(data: Any, *, origin: str = "") -> Target | None:
    """A VSX ``api.object`` answer -> :class:`Target` (source "vsx"); None for an unknown name.

    VSX answers ``{"VSXObject": {...}}`` with every value a string and coordinates in degrees;
    an unknown name gives ``{}``, ``[]`` or an empty ``VSXObject``.
    """
    if data in ({}, [], None, ""):
        return None
    if not isinstance(data, Mapping):
        raise CatalogError(f"VSX answer is not an object{_at(origin)}: {_snippet(repr(data))}")
    if "VSXObject" not in data and "Name" not in data:
        raise CatalogError(f"VSX answer has no VSXObject{_at(origin)}: {_snippet(repr(data))}")
    obj = data.get("VSXObject", data)
    if obj in ({}, [], None, ""):
        return None
    if not isinstance(obj, Mapping):
        raise CatalogError(f"VSX answer has no VSXObject{_at(origin)}: {_snippet(repr(data))}")
    return _vsx_target(obj, origin)


def _vsx_target(obj: Mapping[str, Any], origin: str) -> Target:
    try:
        name = str(obj["Name"]).strip()
        ra = float(obj["RA2000"])
        dec = float(obj["Declination2000"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"malformed VSX object{_at(origin)}: {exc!r}") from exc
    if not name or not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        raise CatalogError(f"malformed VSX object{_at(origin)}: name {name!r}, RA {ra}, "
                           f"Dec {dec}")

    def text(key: str) -> str | None:
        v = obj.get(key)
        return (str(v).strip() or None) if v is not None else None

    period = None
    try:
        period = float(obj["Period"]) if text("Period") else None
    except (TypeError, ValueError):
        period = None
    return Target(name=name, ra_deg=ra, dec_deg=dec, auid=text("AUID"),
                  var_type=text("VariabilityType"), max_mag=text("MaxMag"),
                  min_mag=text("MinMag"), source="vsx", period_days=period)


def parse_vsx_list(data: Any, *, origin: str = "") -> list[Target]:
    """A VSX ``api.list`` (cone search) answer -> targets (no AUID: the list view has none)."""
    if data in ({}, [], None, ""):
        return []
    if not isinstance(data, Mapping) or "VSXObjects" not in data:
        raise CatalogError(f"VSX list answer has no VSXObjects{_at(origin)}: "
                           f"{_snippet(repr(data))}")
    objs = data["VSXObjects"]
    if objs in ({}, [], None, ""):
        return []
    if not isinstance(objs, Mapping):
        raise CatalogError(f"malformed VSX list{_at(origin)}: {_snippet(repr(objs))}")
    rows = objs.get("VSXObject") or []
    if isinstance(rows, Mapping):
        rows = [rows]
    if not isinstance(rows, list):
        raise CatalogError(f"malformed VSX list{_at(origin)}: {_snippet(repr(rows))}")
    out = []
    for r in rows:
        try:
            if not isinstance(r, Mapping):
                raise CatalogError(f"not an object: {_snippet(repr(r))}")
            out.append(_vsx_target(r, origin))
        except CatalogError as exc:
            log.warning("VSX list row skipped%s: %s", _at(origin), exc)
    if rows and not out:
        raise CatalogError(f"no readable row in the VSX list{_at(origin)}")
    return out


def vsx_object(config: Any, name: str) -> Target | None:
    """Look ``name`` up in VSX (cache first). None when VSX knows no such star."""
    cfg = resolve(config)
    url = cfg.photometry.vsx_url
    params = {"view": "api.object", "ident": name, "format": "json"}

    def fetch() -> tuple[Any, str]:
        return _get_json(cfg, url, params, what="VSX"), url

    got = _cached(cfg, "vsx", normalize_name(name), what="VSX object", fetch=fetch,
                  parse=lambda d: parse_vsx_object(d, origin=url))
    return got.value


def vsx_cone(config: Any, ra_deg: float, dec_deg: float, radius_deg: float) -> list[Target]:
    """VSX cone search (``api.list``), cached; targets sorted by distance from the centre.

    The query centre is snapped to a 0.05° grid (radius enlarged to match) so the frames of a
    series, whose header RA/DEC wander a little, share one cache entry.
    """
    cfg = resolve(config)
    url = cfg.photometry.vsx_url
    step = 0.05
    qra = round(ra_deg / step) * step % 360.0
    qdec = max(-90.0, min(90.0, round(dec_deg / step) * step))
    qradius = radius_deg + step
    params = {"view": "api.list", "ra": f"{qra:.2f}", "dec": f"{qdec:.2f}",
              "radius": f"{qradius:.4f}", "format": "json"}
    key = f"ra={qra:.2f}|dec={qdec:.2f}|r={qradius:.4f}"

    def fetch() -> tuple[Any, str]:
        return _get_json(cfg, url, params, what="VSX cone search"), url

    got = _cached(cfg, "vsx-cone", key, what="VSX cone search", fetch=fetch,
                  parse=lambda d: parse_vsx_list(d, origin=url))
    found = [(t, _separation_deg(ra_deg, dec_deg, t.ra_deg, t.dec_deg)) for t in got.value]
    return [t for t, sep in sorted(found, key=lambda p: p[1]) if sep <= radius_deg]


# --- resolve_target ---------------------------------------------------------------------------

def _wanted_name(cfg: Config, object_name: str | None) -> tuple[str | None, str]:
    """(name to look up or None for 'no name', how it was chosen: config|alias|object)."""
    ph = cfg.photometry
    if ph.target:
        return str(ph.target).strip(), "config"
    obj = " ".join(str(object_name or "").split())
    aliases: Mapping[str, str] = ph.target_aliases or {}
    if obj in aliases:
        return aliases[obj].strip(), "alias"
    norm = normalize_name(obj)
    for k, v in aliases.items():
        if normalize_name(k) == norm:
            return v.strip(), "alias"
    if norm in _NO_NAME:
        return None, "object"
    return obj, "object"


def resolve_target(config: Any, object_name: str | None, ra_deg: float | None,
                   dec_deg: float | None) -> Target:
    """The variable star a frame is for: its AAVSO name, AUID and coordinates.

    ``object_name`` is the FITS OBJECT (``photometry.target`` overrides it,
    ``photometry.target_aliases`` maps it to an AAVSO name); ``ra_deg``/``dec_deg`` the frame's
    RA/DEC. VSX is asked (through the cache); without an answer (offline, network down) the
    target comes from a matching bundled or ``sequence_file`` chart (source "sequence") or from
    the header (source "header"/"config", with a WARNING). OBJECT "Unknown" or absent: the star
    of ``photometry.sequence_file`` when set, else the VSX variable nearest RA/DEC within
    ``photometry.vsx_cone_arcmin``. Raises :class:`CatalogError` when VSX does not know the name
    or nothing identifies the star.
    """
    cfg = resolve(config)
    have_coords = _finite(ra_deg, dec_deg)
    name, how = _wanted_name(cfg, object_name)
    if name is None:
        chart = _sequence_file_chart(cfg)
        if chart is not None and chart.star:
            name, how = chart.star, "sequence_file"
            log.info("OBJECT is %r: taking the star of photometry.sequence_file, %s",
                     object_name, name)
    if name is None:
        return _target_by_cone(cfg, object_name, ra_deg if have_coords else None,
                               dec_deg if have_coords else None)
    chart_target = _sequence_file_target(cfg, name)
    if chart_target is not None:
        return chart_target
    try:
        target = vsx_object(cfg, name)
    except CatalogError as exc:
        return _fallback_target(cfg, name, how, ra_deg if have_coords else None,
                                dec_deg if have_coords else None, str(exc))
    if target is None:
        hint = ("set photometry.target to the AAVSO name" if how != "object" else
                f"add photometry.target_aliases: {{{object_name!r}: <AAVSO name>}} or set "
                f"photometry.target")
        raise CatalogError(f"VSX knows no variable star named {name!r} ({how}"
                           f"{'' if how == 'config' else f' from OBJECT {object_name!r}'}); "
                           f"{hint}")
    if have_coords:
        sep = _separation_deg(target.ra_deg, target.dec_deg, float(ra_deg), float(dec_deg))
        if sep > 1.0:
            log.warning("%s (VSX RA %.4f Dec %.4f) is %.1f° from the frame's RA/DEC; is "
                        "OBJECT %r / photometry.target right?", target.name, target.ra_deg,
                        target.dec_deg, sep, object_name)
    return target


def _sequence_file_chart(cfg: Config) -> Sequence | None:
    path = cfg.photometry.sequence_file
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        return _load_cached(str(p), p.stat().st_mtime)
    except (OSError, CatalogError) as exc:
        log.debug("photometry.sequence_file %s not usable to name the target: %s", p, exc)
        return None


def _sequence_file_target(cfg: Config, name: str) -> Target | None:
    """The star of ``photometry.sequence_file`` when it is the one asked for (no request)."""
    chart = _sequence_file_chart(cfg)
    if chart is None or not (chart.star and normalize_name(chart.star) == normalize_name(name)
            and _finite(chart.star_ra_deg, chart.star_dec_deg)):
        return None
    return Target(name=chart.star, ra_deg=float(chart.star_ra_deg),  # type: ignore[arg-type]
                  dec_deg=float(chart.star_dec_deg),  # type: ignore[arg-type]
                  auid=chart.star_auid, source="sequence")


def _fallback_target(cfg: Config, name: str, how: str, ra_deg: float | None,
                     dec_deg: float | None, reason: str) -> Target:
    for seq in _local_sequences(cfg):
        if seq.star and normalize_name(seq.star) == normalize_name(name) and _finite(
                seq.star_ra_deg, seq.star_dec_deg):
            log.warning("VSX not available (%s); %s taken from the chart in %s", reason,
                        seq.star, seq.origin)
            return Target(name=seq.star, ra_deg=float(seq.star_ra_deg),  # type: ignore[arg-type]
                          dec_deg=float(seq.star_dec_deg),  # type: ignore[arg-type]
                          auid=seq.star_auid, source="sequence")
    if ra_deg is None or dec_deg is None:
        raise CatalogError(f"cannot identify {name!r}: VSX not available ({reason}) and the "
                           f"frame has no RA/DEC")
    source = "config" if how == "config" else "header"
    log.warning("VSX not available (%s); using %r at the frame's RA %.4f Dec %.4f "
                "(source %s, not checked against VSX)", reason, name, ra_deg, dec_deg, source)
    return Target(name=name, ra_deg=float(ra_deg), dec_deg=float(dec_deg), source=source)


def _target_by_cone(cfg: Config, object_name: str | None, ra_deg: float | None,
                    dec_deg: float | None) -> Target:
    ph = cfg.photometry
    if ra_deg is None or dec_deg is None:
        raise CatalogError(f"OBJECT is {object_name!r} and the frame has no RA/DEC: set "
                           f"photometry.target to the star's AAVSO name")
    radius = float(ph.vsx_cone_arcmin) / 60.0
    try:
        found = vsx_cone(cfg, ra_deg, dec_deg, radius)
    except CatalogError as exc:
        raise CatalogError(f"OBJECT is {object_name!r} and the VSX cone search failed ({exc}); "
                           f"set photometry.target to the star's AAVSO name") from exc
    candidates = [t for t in found if _bright_enough(t, float(ph.maglimit))]
    if not candidates:
        raise CatalogError(f"OBJECT is {object_name!r} and VSX lists no variable brighter than "
                           f"V {ph.maglimit:g} within {ph.vsx_cone_arcmin:g}′ of RA "
                           f"{ra_deg:.4f} Dec {dec_deg:.4f}; set photometry.target")
    best = candidates[0]
    if len(candidates) > 1:
        log.warning("OBJECT is %r: %d VSX variables within %g′ (%s); taking the nearest, %s "
                    "(set photometry.target to choose)", object_name, len(candidates),
                    ph.vsx_cone_arcmin, ", ".join(t.name for t in candidates[:5]), best.name)
    else:
        log.info("OBJECT is %r: VSX cone search found %s", object_name, best.name)
    try:
        full = vsx_object(cfg, best.name)  # for the AUID (the list view has none)
    except CatalogError as exc:
        log.warning("VSX object look-up of %s failed (%s); no AUID", best.name, exc)
        full = None
    return full or best


def _bright_enough(t: Target, maglimit: float) -> bool:
    """False only when VSX says the star is never brighter than ``maglimit``."""
    m = parse_vsx_mag(t.max_mag)
    if m is None or m.amplitude or m.fainter_than:
        return True
    return m.value <= maglimit


# --- local sequences: sequence_file and bundled charts -----------------------------------------

@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Sequence:
    del mtime  # part of the cache key only
    return load_sequence_file(path)


def _bundled_paths() -> list[Path]:
    try:
        folder = resources.files("starnode") / "data"
        return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith("_vsp.json"))
    except (OSError, ModuleNotFoundError):
        return []


def _local_sequences(cfg: Config) -> list[Sequence]:
    """The configured sequence_file (if readable) and the bundled charts."""
    paths = []
    if cfg.photometry.sequence_file:
        paths.append(Path(cfg.photometry.sequence_file).expanduser())
    paths.extend(_bundled_paths())
    out = []
    for p in paths:
        try:
            out.append(_load_cached(str(p), p.stat().st_mtime))
        except (OSError, CatalogError) as exc:
            log.debug("local chart %s not usable: %s", p, exc)
    return out


def _matches(seq: Sequence, target: Target) -> bool:
    if seq.star and normalize_name(seq.star) == normalize_name(target.name):
        return True
    if _finite(seq.star_ra_deg, seq.star_dec_deg, target.ra_deg, target.dec_deg):
        return _separation_deg(seq.star_ra_deg, seq.star_dec_deg,  # type: ignore[arg-type]
                               target.ra_deg, target.dec_deg) < 1.0 / 60.0
    return False


# --- VSP --------------------------------------------------------------------------------------

def _vsp_parse(data: Any, origin: str) -> Sequence:
    if isinstance(data, Mapping) and "photometry" not in data:
        for key in ("errors", "error", "detail", "message"):
            if key in data:
                raise CatalogError(f"VSP says: {_snippet(json.dumps(data[key]))}{_at(origin)}")
    seq = parse_vsp_chart(data, origin=origin)
    if seq.comps and not seq.chart_id:
        raise CatalogError(f"VSP answer has comparison stars but no chartid{_at(origin)}")
    return seq


def vsp_sequence(config: Any, target: Target, *, fov_arcmin: float,
                 maglimit: float | None = None) -> Sequence:
    """The VSP chart of the target's field (cache first); may have no comps (no sequence).

    Asks by name (``star=``) for a target AAVSO named (source vsx/sequence), else by position
    (``ra=``/``dec=`` in degrees). ``fov_arcmin`` is rounded up to whole arcminutes.
    """
    cfg = resolve(config)
    ph = cfg.photometry
    fov = float(math.ceil(fov_arcmin - 1e-9))
    mlim = round(float(ph.maglimit if maglimit is None else maglimit), 1)
    url = ph.vsp_url
    params: dict[str, Any] = {"fov": f"{fov:g}", "maglimit": f"{mlim:g}", "format": "json"}
    if target.source in ("vsx", "sequence"):
        params["star"] = target.name
        key = f"star={normalize_name(target.name)}|fov={fov:g}|maglimit={mlim:g}"
    else:
        params["ra"] = f"{target.ra_deg:.5f}"
        params["dec"] = f"{target.dec_deg:.5f}"
        key = f"ra={target.ra_deg:.3f}|dec={target.dec_deg:.3f}|fov={fov:g}|maglimit={mlim:g}"

    def fetch() -> tuple[Any, str]:
        return _get_json(cfg, url, params, what="VSP"), url

    got = _cached(cfg, "vsp", key, what="VSP chart", fetch=fetch,
                  parse=lambda d: _vsp_parse(d, url))
    seq: Sequence = got.value
    extra = dict(seq.extra)
    extra.update({"fetched_at": got.fetched_at, "cache": got.origin, "request": key})
    return Sequence(source="vsp", comps=seq.comps, chart_id=seq.chart_id,
                    star=seq.star or target.name, star_auid=seq.star_auid or target.auid,
                    star_ra_deg=seq.star_ra_deg, star_dec_deg=seq.star_dec_deg,
                    fov_arcmin=seq.fov_arcmin or fov, maglimit=seq.maglimit or mlim,
                    origin=url if got.origin == "network" else f"{got.origin}: {got.url or url}",
                    extra=extra)


# --- Gaia DR3 ---------------------------------------------------------------------------------

#: G - V = c0 + c1 x + c2 x^2 + c3 x^3 with x = BP - RP: Riello et al. 2021 (A&A 649, A3), Gaia
#: EDR3 documentation section 5.5.1, Table 5.7 "Johnson-Cousins relationships"; scatter 0.03017
#: mag, valid for -0.5 < BP-RP < 5.0. Gaia DR3 keeps the EDR3 photometry, so it applies as is.
GAIA_G_MINUS_V = {"coeffs": (-0.02704, 0.01424, -0.2156, 0.01426), "sigma": 0.03017,
                  "bp_rp_range": (-0.5, 5.0)}

#: Gaia EDR3 passband zero-point uncertainties (mag), added to the photon-noise errors.
_GAIA_ZP_SIGMA = {"G": 0.0027553202, "BP": 0.0027901700, "RP": 0.0037793818}

#: Sources with an astrometric fit this poor are likely unresolved binaries (Lindegren+ 2021).
_GAIA_MAX_RUWE = 1.4

#: A comp with a neighbour (in the query, so brighter than the G limit) closer than this and
#: less than ``_GAIA_BLEND_DMAG`` fainter would be blended in a Seestar aperture.
_GAIA_BLEND_ARCSEC = 15.0
_GAIA_BLEND_DMAG = 3.0

_GAIA_COLUMNS = ("source_id", "ra", "dec", "phot_g_mean_mag", "phot_g_mean_flux_over_error",
                 "phot_bp_mean_mag", "phot_bp_mean_flux_over_error", "phot_rp_mean_mag",
                 "phot_rp_mean_flux_over_error", "bp_rp", "ruwe", "phot_variable_flag")


def gaia_g_to_v(g: float, bp_rp: float, *, sigma_g: float = 0.0,
                sigma_bp_rp: float = 0.0) -> tuple[float, float] | None:
    """Johnson V from Gaia G and BP-RP, and its error; None outside the valid colour range.

    The error combines the relation's scatter (0.03017 mag) with the catalogue errors of G and of
    the colour (through the slope of the polynomial).
    """
    lo, hi = GAIA_G_MINUS_V["bp_rp_range"]
    if not (_finite(g, bp_rp) and lo < bp_rp < hi):
        return None
    c0, c1, c2, c3 = GAIA_G_MINUS_V["coeffs"]
    x = bp_rp
    g_minus_v = c0 + c1 * x + c2 * x * x + c3 * x ** 3
    slope = c1 + 2 * c2 * x + 3 * c3 * x * x
    err = math.sqrt(GAIA_G_MINUS_V["sigma"] ** 2 + sigma_g ** 2 + (slope * sigma_bp_rp) ** 2)
    return g - g_minus_v, err


def _mag_err(flux_over_error: float | None, zp_sigma: float) -> float:
    if flux_over_error is None or not math.isfinite(flux_over_error) or flux_over_error <= 0:
        return math.nan
    return math.hypot(2.5 / math.log(10) / flux_over_error, zp_sigma)


def _gaia_adql(ra: float, dec: float, radius_deg: float, g_limit: float) -> str:
    return (f"SELECT TOP 2000 {', '.join(_GAIA_COLUMNS)} FROM gaiadr3.gaia_source "
            f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
            f"CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, {radius_deg:.5f})) "
            f"AND phot_g_mean_mag < {g_limit:.2f} AND bp_rp IS NOT NULL "
            f"ORDER BY phot_g_mean_mag")


def parse_gaia_csv(text: str, *, maglimit: float, origin: str = "") -> list[CompStar]:
    """Gaia DR3 TAP CSV rows -> V comparison stars (label = Gaia DR3 source_id).

    Excluded, each counted in the DEBUG log: Gaia-flagged variables, RUWE > 1.4, colour outside
    the relation's range, missing photometry, V fainter than ``maglimit``, and stars with a
    neighbour within 15″ less than 3 mag fainter.
    """
    if text.lstrip().startswith("<"):
        raise CatalogError(f"Gaia TAP answered XML/HTML, not CSV{_at(origin)}: "
                           f"{_snippet(text)!r}")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("source_id", "ra", "dec", "phot_g_mean_mag", "bp_rp")
               if c not in (reader.fieldnames or [])]
    if missing:
        raise CatalogError(f"Gaia TAP answer lacks columns {missing}{_at(origin)}: "
                           f"{_snippet(text)!r}")

    def num(row: Mapping[str, str], key: str) -> float | None:
        v = (row.get(key) or "").strip()
        try:
            return float(v) if v else None
        except ValueError:
            return None

    rows = []
    skipped: dict[str, int] = {}
    for row in reader:
        ra, dec, g, bp_rp = (num(row, k) for k in ("ra", "dec", "phot_g_mean_mag", "bp_rp"))
        if not _finite(ra, dec, g):
            skipped["no position or G"] = skipped.get("no position or G", 0) + 1
            continue
        rows.append((row, float(ra), float(dec), float(g), bp_rp))  # type: ignore[arg-type]
    comps = []
    for i, (row, ra, dec, g, bp_rp) in enumerate(rows):
        reason = None
        if (row.get("phot_variable_flag") or "").strip().upper() == "VARIABLE":
            reason = "Gaia variable"
        elif (ruwe := num(row, "ruwe")) is not None and ruwe > _GAIA_MAX_RUWE:
            reason = "RUWE > 1.4"
        elif bp_rp is None:
            reason = "no BP-RP"
        else:
            s_g = _mag_err(num(row, "phot_g_mean_flux_over_error"), _GAIA_ZP_SIGMA["G"])
            s_bp = _mag_err(num(row, "phot_bp_mean_flux_over_error"), _GAIA_ZP_SIGMA["BP"])
            s_rp = _mag_err(num(row, "phot_rp_mean_flux_over_error"), _GAIA_ZP_SIGMA["RP"])
            s_c = math.hypot(s_bp, s_rp)
            vv = gaia_g_to_v(g, bp_rp, sigma_g=0.0 if math.isnan(s_g) else s_g,
                             sigma_bp_rp=0.0 if math.isnan(s_c) else s_c)
            if vv is None:
                reason = "BP-RP outside -0.5..5.0"
            elif vv[0] > maglimit:
                reason = "fainter than maglimit"
            elif any(j != i and og < g + _GAIA_BLEND_DMAG
                     and _separation_deg(ra, dec, ora, odec) * 3600 < _GAIA_BLEND_ARCSEC
                     for j, (_r, ora, odec, og, _c) in enumerate(rows)
                     if abs(odec - dec) * 3600 < _GAIA_BLEND_ARCSEC):
                reason = "close neighbour"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        sid = (row.get("source_id") or "").strip()
        v, v_err = vv  # type: ignore[misc]
        comps.append(CompStar(
            label=sid, ra_deg=ra, dec_deg=dec, mags={"V": (round(v, 4), round(v_err, 4))},
            auid=None,
            comments=f"Gaia DR3 {sid}: V from G {g:.4f} and BP-RP {bp_rp:.4f} "
                     f"(Riello et al. 2021)"))
    if skipped:
        log.debug("Gaia DR3 stars not used as comps%s: %s", _at(origin),
                  ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))
    return comps


def gaia_sequence(config: Any, target: Target, *, fov_arcmin: float,
                  maglimit: float | None = None) -> Sequence:
    """Gaia DR3 comps (V from G, BP-RP) around the target: source "gaia-dr3", no chart id.

    One ADQL query (``FORMAT=csv``) to ``photometry.gaia_tap_url`` over a circle that covers a
    square field of ``fov_arcmin``; cached like the VSP charts.
    """
    cfg = resolve(config)
    ph = cfg.photometry
    fov = float(math.ceil(fov_arcmin - 1e-9))
    mlim = round(float(ph.maglimit if maglimit is None else maglimit), 1)
    radius = fov / 60.0 / 2.0 * math.sqrt(2.0)
    # V - G is >= -0.03 over the valid colour range, so no star with V <= mlim has G >= mlim+0.1.
    adql = _gaia_adql(target.ra_deg, target.dec_deg, radius, mlim + 0.1)
    url = ph.gaia_tap_url
    key = (f"ra={target.ra_deg:.4f}|dec={target.dec_deg:.4f}|fov={fov:g}|maglimit={mlim:g}")

    def fetch() -> tuple[Any, str]:
        resp = _request(cfg, "POST", url, what="Gaia DR3 TAP",
                        data={"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv",
                              "QUERY": adql})
        return resp.text, url

    got = _cached(cfg, "gaia", key, what="Gaia DR3 comps", fetch=fetch,
                  parse=lambda text: parse_gaia_csv(str(text), maglimit=mlim, origin=url))
    log.log(logging.WARNING if got.origin == "network" else logging.INFO,
            "no VSP sequence for %s: %d Gaia DR3 comps (V from G and BP-RP, lower quality)",
            target.name, len(got.value))
    return Sequence(source="gaia-dr3", comps=tuple(got.value), chart_id=None, star=target.name,
                    star_auid=target.auid, star_ra_deg=target.ra_deg,
                    star_dec_deg=target.dec_deg, fov_arcmin=fov, maglimit=mlim,
                    origin=url if got.origin == "network" else f"{got.origin}: {url}",
                    extra={"catalog": "Gaia DR3", "fetched_at": got.fetched_at,
                           "cache": got.origin, "request": key,
                           "transformation": "V = G - (-0.02704 + 0.01424 x - 0.2156 x^2 + "
                                             "0.01426 x^3), x = BP-RP (Riello et al. 2021)",
                           "transformation_sigma": GAIA_G_MINUS_V["sigma"]})


# --- get_sequence -------------------------------------------------------------------------------

def get_sequence(config: Any, target: Target, *, fov_arcmin: float, band: str = "V") -> Sequence:
    """The comparison sequence for the target's field.

    Order: ``photometry.sequence_file`` (used instead of VSP); the VSP chart (cache, network,
    stale cache; offline: cache only); a bundled chart of the same star when VSP cannot be had;
    Gaia DR3 comps (``photometry.gaia_fallback``, band V only) when VSP has no usable comps for
    the field. The comps of one sequence all come from one source. Raises :class:`CatalogError`.
    """
    cfg = resolve(config)
    ph = cfg.photometry
    if not (isinstance(fov_arcmin, (int, float)) and math.isfinite(fov_arcmin)
            and fov_arcmin > 0):
        raise CatalogError(f"fov_arcmin must be a positive number, got {fov_arcmin!r}")
    if ph.sequence_file:
        seq = load_sequence_file(ph.sequence_file)
        _warn_if_other_field(seq, target, fov_arcmin)
        if not seq.usable(band):
            log.warning("photometry.sequence_file %s has no usable %s comps", seq.origin, band)
        return seq
    try:
        seq = vsp_sequence(cfg, target, fov_arcmin=fov_arcmin)
    except CatalogError as exc:
        for local in _local_sequences(cfg):
            if _matches(local, target):
                log.warning("VSP not available (%s); using the bundled chart %s (%s)", exc,
                            local.chart_id, local.origin)
                return local
        raise
    if seq.usable(band):
        return seq
    why = (f"VSP chart {seq.chart_id} has no usable {band} comps" if seq.comps
           else "VSP has no sequence")
    why += f" for {target.name} in a {math.ceil(fov_arcmin - 1e-9)}′ field"
    if not ph.gaia_fallback:
        raise CatalogError(f"{why} (photometry.gaia_fallback is off)")
    if band != "V":
        raise CatalogError(f"{why}; the Gaia DR3 fallback gives V only, not {band}")
    try:
        gaia = gaia_sequence(cfg, target, fov_arcmin=fov_arcmin)
    except CatalogError as exc:
        raise CatalogError(f"{why}, and the Gaia DR3 fallback failed: {exc}") from exc
    if not gaia.comps:
        raise CatalogError(f"{why}, and Gaia DR3 has no usable comps there either")
    return gaia


def _warn_if_other_field(seq: Sequence, target: Target, fov_arcmin: float) -> None:
    if _finite(seq.star_ra_deg, seq.star_dec_deg, target.ra_deg, target.dec_deg):
        sep = _separation_deg(seq.star_ra_deg, seq.star_dec_deg,  # type: ignore[arg-type]
                              target.ra_deg, target.dec_deg) * 60.0
        if sep > fov_arcmin / 2.0:
            log.warning("the sequence in %s is for %s, %.0f′ from %s: it is not this field",
                        seq.origin, seq.star, sep, target.name)
