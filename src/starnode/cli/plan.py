"""``starnode plan``: tonight's plan for this site and telescope, in words, JSON or HTML."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Config

__all__ = ["add_parser", "cmd_plan"]


def add_parser(sub: Any, add: Any) -> None:
    """Register ``starnode plan`` (``add`` is the parser factory of :func:`build_parser`)."""
    from .args import night_arg

    sp: argparse.ArgumentParser = add(
        "plan", "tonight's plan: which stars, when (UTC), which exposures, and why others not",
        "Choose tonight's targets from the config's targets list and the AAVSO Target Tool "
        "(cached: works offline from the last answer), keep only what is observable over a "
        "whole window (sun at or below telescope.sun_limit, altitude between the floor, the "
        "horizon mask and the ceiling, the Moon, saturation and faintness, cadence), and pack "
        "them into slots with absolute UTC times. Every left-out star says why.")
    sp.add_argument("--night", metavar="DATE", type=night_arg,
                    help="the night (YYYY-MM-DD, the evening's date; default: tonight, or "
                    "the coming night once this one's dawn has passed)")
    sp.add_argument("--format", choices=("text", "json", "html"), default="text")
    sp.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    sp.add_argument("--chart", metavar="PNG", help="also write the altitude chart (PNG; its "
                    "text alternative is printed with --format text)")
    sp.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace, cfg: Config) -> int:
    from ..planning.ephemeris import configure_offline
    from ..planning.planner import plan_night
    from ..planning.render import chart_png, chart_text, plan_html, plan_json, plan_text, write

    configure_offline()
    if cfg.hub.url:  # the hub's assignment for the night, when the node holds one
        import dataclasses

        from ..node.nightwork import network_plan

        plan, held = network_plan(cfg, args.night)
        if held:
            plan = dataclasses.replace(plan, notes=(*plan.notes, f"planned from the hub's "
                                                    f"assignment {held}"))
    else:
        plan = plan_night(cfg, args.night)
    tel = cfg.telescope
    png = b""
    if args.chart or args.format == "html":
        png = chart_png(plan, float(tel.min_altitude), float(tel.max_altitude))
    if args.chart:
        if png:
            write(args.chart, png)
        else:
            print(f"no chart written: nothing is planned for {plan.night}", file=sys.stderr)
    if args.format == "json":
        text = plan_json(plan)
    elif args.format == "html":
        text = plan_html(plan, png)
    else:
        text = plan_text(plan)
        if args.chart and png:
            text += f"Chart ({args.chart}): {chart_text(plan)}\n"
    if args.out:
        write(args.out, text)
    else:
        sys.stdout.write(text)
    return 0
