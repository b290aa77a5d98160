"""Tonight's plan: which variable stars to observe, when, and with what exposures.

The plan is computed by :mod:`starnode.planning.planner` and executed by
:mod:`starnode.telescope.runner`; :mod:`starnode.planning.model` is the contract between them.
"""

from .model import Exclusion, Plan, PlanItem

__all__ = ["Exclusion", "Plan", "PlanItem"]
