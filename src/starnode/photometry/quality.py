"""The quality flag of a measurement and every reason that kept it from ``good``.

Why here and not in the report writer: the flag is a property of the measurement (its SNR,
error, comps, check star, airmass), decided once with the configured limits; the report writer
only gates on it. Rules: docs/photometry.md, Method 11.
"""

from __future__ import annotations

from ..config import Config
from ..errors import QualityFlag
from ..frame.load import Frame
from ..records import CheckStar

__all__ = ["grade_quality"]

_FLAGS = (QualityFlag.GOOD, QualityFlag.ACCEPTABLE, QualityFlag.POOR)


class _Grader:
    """Collects failed criteria; ``level`` 0 good, 1 acceptable, 2 poor."""

    def __init__(self) -> None:
        self.level = 0
        self.reasons: list[str] = []

    def note(self, level: int, reason: str) -> None:
        self.level = max(self.level, level)
        self.reasons.append(reason)

    def limits(self, value: float | None, good_lim: float, acc_lim: float, what: str,
               higher: bool, fmt: str = "{:.3g}") -> None:
        if value is None:
            return
        op = "<" if higher else ">"
        bad_good = value < good_lim if higher else value > good_lim
        bad_acc = value < acc_lim if higher else value > acc_lim
        if bad_acc:
            self.note(2, f"{what} {fmt.format(value)} {op} {fmt.format(acc_lim)}")
        elif bad_good:
            self.note(1, f"{what} {fmt.format(value)} {op} {fmt.format(good_lim)}")


def grade_quality(cfg: Config, snr: float, err: float, n: int, check: CheckStar | None,
                  airmass: float | None, frame: Frame) -> tuple[QualityFlag, list[str]]:
    """Quality flag and reasons of one measurement.

    Parameters
    ----------
    cfg : Config
        ``quality.*`` limits.
    snr, err : float
        The target's SNR and uncertainty (mag).
    n : int
        Comps in the ensemble.
    check : CheckStar or None
        The check star (None: ``poor``).
    airmass : float or None
        None caps the flag at ``acceptable`` (no site, or below the horizon).
    frame : Frame
        For the site and a stack's time uncertainty (a note).

    Returns
    -------
    (QualityFlag, list of str)
    """
    q = cfg.quality
    g = _Grader()
    g.limits(snr, q.good_snr, q.acceptable_snr, "SNR", True, "{:.0f}")
    g.limits(err, q.good_max_error, q.acceptable_max_error, "uncertainty", False)
    if n < q.good_min_comps:
        g.note(1, f"{n} comparison stars < {q.good_min_comps}")
    if check is None:
        g.note(2, "no check star")
    else:
        g.limits(abs(check.deviation) if check.deviation is not None else None,
                 q.good_max_check_deviation, q.acceptable_max_check_deviation,
                 "check star deviation", False)
    if airmass is None:
        g.note(1, "airmass unknown (no site)" if frame.site is None
               else "target below the horizon")
    else:
        g.limits(airmass, q.good_max_airmass, q.acceptable_max_airmass, "airmass", False)
    if frame.time_uncertainty_s > 0:
        g.reasons.append(f"stack: time uncertain by {frame.time_uncertainty_s:.0f} s")
    return _FLAGS[g.level], g.reasons
