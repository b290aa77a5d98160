"""The hub's page: a member asks the network for a star, in plain HTML that works with a
keyboard and a screen reader (labels on every field, errors and answers announced, no script).

``GET /`` shows the form; ``POST /request`` (``application/x-www-form-urlencoded``) checks the
member's node token (given in a password field, never in a URL), records the request
(:func:`.requests.add_request`) and answers with what became of the member's requests in words
(:func:`.requests.news`). ``GET /network`` asks for an admin token and ``POST /network``
shows, per node, its latest assignment, what it observed that night and the alerts in flight.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from .store import HubError
from .wire import StarRequest

__all__ = ["page_router", "render", "render_network"]

page_router = APIRouter()

_STYLE = """
body { font: 1.05rem/1.5 system-ui, sans-serif; max-width: 40rem; margin: 1.5rem auto;
       padding: 0 1rem; color: #1a1a1a; background: #fff; }
label { display: block; margin-top: 0.9rem; font-weight: 600; }
.hint { display: block; font-weight: 400; color: #444; font-size: 0.95rem; }
input { font: inherit; padding: 0.35rem; width: 100%; box-sizing: border-box;
        border: 1px solid #555; border-radius: 3px; }
button { font: inherit; margin-top: 1.2rem; padding: 0.45rem 1.2rem; background: #0b4f8a;
         color: #fff; border: 0; border-radius: 3px; cursor: pointer; }
:focus-visible { outline: 3px solid #b35900; outline-offset: 2px; }
.error { border-left: 4px solid #a00; padding: 0.3rem 0.8rem; background: #fdeaea; }
.answer { border-left: 4px solid #0a6b2c; padding: 0.3rem 0.8rem; background: #e9f6ee; }
"""


def render(message: str = "", error: str = "", news: list[str] | None = None,
           values: dict[str, str] | None = None) -> str:
    """The page's HTML.

    Parameters
    ----------
    message : str
        The answer to a request (announced as a status).
    error : str
        Why a request was refused (announced as an alert).
    news : list of str, optional
        What became of the member's requests, one sentence each.
    values : dict, optional
        The fields as the member filled them in (kept after an error; never the token).

    Returns
    -------
    str
    """
    v = {k: html.escape(s, quote=True) for k, s in (values or {}).items()}
    parts = ["<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>Ask the network for a star - starnode hub</title>",
             f"<style>{_STYLE}</style>", "</head>", "<body>", "<main>",
             "<h1>Ask the network for a star</h1>",
             "<p>The hub shares out the network's nights among its telescopes. Ask for a "
             "variable star here and it enters the next night's allocation; you hear back "
             "what the telescopes made of it.</p>"]
    if error:
        parts.append(f'<div class="error" role="alert"><p>Not recorded: '
                     f"{html.escape(error)}</p></div>")
    if message:
        parts.append(f'<div class="answer" role="status"><p>{html.escape(message)}</p>')
        if news:
            parts.append("<h2>Your requests</h2><ul>")
            parts += [f"<li>{html.escape(s)}</li>" for s in news]
            parts.append("</ul>")
        parts.append("</div>")
    parts += [
        '<form method="post" action="/request">',
        '<label for="star">Star<span class="hint" id="star-hint">its AAVSO name, e.g. '
        "SS Cyg</span></label>",
        f'<input id="star" name="star" required maxlength="64" autocomplete="off" '
        f'aria-describedby="star-hint" value="{v.get("star", "")}">',
        '<label for="member">Your AAVSO observer code</label>',
        f'<input id="member" name="member" required maxlength="16" autocomplete="off" '
        f'value="{v.get("member", "")}">',
        '<label for="until">Until (optional)<span class="hint" id="until-hint">the last '
        "night you want it observed</span></label>",
        f'<input id="until" name="until" type="date" aria-describedby="until-hint" '
        f'value="{v.get("until", "")}">',
        '<label for="token">Your node\'s hub token<span class="hint" id="token-hint">the '
        "token your telescope uses to talk to the hub; it proves the request is "
        "yours</span></label>",
        '<input id="token" name="token" type="password" required '
        'autocomplete="current-password" aria-describedby="token-hint">',
        '<button type="submit">Ask for this star</button>',
        "</form>", "</main>", "</body>", "</html>"]
    return "\n".join(parts)


def _head(title: str) -> list[str]:
    return ["<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)} - starnode hub</title>",
            f"<style>{_STYLE}{_TABLE_STYLE}</style>", "</head>", "<body>", "<main>"]


_TABLE_STYLE = """
body.wide { max-width: 70rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin-top: 1rem; font-size: 0.95rem; }
th, td { border: 1px solid #888; padding: 0.3rem 0.5rem; text-align: left;
         vertical-align: top; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.4rem; }
"""


def render_network(rows: list[dict[str, Any]] | None = None, error: str = "") -> str:
    """The operator's view (admin token): per node, tonight's assignment, what was observed,
    the alerts in flight.

    Parameters
    ----------
    rows : list of dict, optional
        :meth:`.store.HubStore.nodes` rows with ``tonight`` (:func:`.coverage.node_nights`);
        None shows only the token form.
    error : str
        Why the token was refused.

    Returns
    -------
    str
    """
    e = html.escape
    parts = _head("The network tonight")
    parts[parts.index("<body>")] = '<body class="wide">'
    parts += ["<h1>The network tonight</h1>"]
    if error:
        parts.append(f'<div class="error" role="alert"><p>{e(error)}</p></div>')
    if rows is None:
        parts += ['<form method="post" action="/network">',
                  '<label for="token">Admin token<span class="hint" id="token-hint">shown '
                  "once by starnode hub add-admin</span></label>",
                  '<input id="token" name="token" type="password" required '
                  'autocomplete="current-password" aria-describedby="token-hint">',
                  '<button type="submit">Show the network</button>', "</form>"]
    else:
        parts += ['<div class="scroll" role="region" aria-label="Nodes" tabindex="0">',
                  "<table><caption>Per node: its latest assignment, what it observed that "
                  "night, the alerts it has not answered</caption>",
                  "<thead><tr>" + "".join(f'<th scope="col">{h}</th>' for h in (
                      "Node", "Member", "State", "Night", "Targets asked", "Answer",
                      "Observed", "Alerts in flight", "Note")) + "</tr></thead><tbody>"]
        for r in rows:
            t = r.get("tonight") or {}
            observed = (f"{t.get('observed', 0)} measurement(s) of "
                        f"{t.get('targets_observed', 0)} target(s)" if t.get("night") else "-")
            cells = [r["observer_code"], r["state"], t.get("night") or "none",
                     str(t.get("items", 0)), t.get("ack") or "-", observed,
                     ", ".join(t.get("alerts_in_flight") or []) or "none",
                     t.get("note") or ""]
            parts.append(f'<tr><th scope="row">{e(r["name"])}</th>'
                         + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
        parts += ["</tbody></table>", "</div>"]
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts)


@page_router.get("/network", response_class=HTMLResponse)
def network_form() -> HTMLResponse:
    """The operator's view: the admin token form."""
    return HTMLResponse(render_network())


@page_router.post("/network", response_class=HTMLResponse)
async def network(request: Request) -> HTMLResponse:
    """The operator's view, for an admin token given in the form (never in a URL)."""
    from .coverage import node_nights

    door: Any = request.app.state.door
    form = _form(await door.body(request))
    store = door.store

    def work() -> list[dict[str, Any]]:
        token = form.get("token", "")
        door._stranger(request, token)  # the same rate limit as the API for unknown tokens
        who = door._admit(request, door._remember(token, store.authenticate(token))
                          if token else None)
        if who.role != "admin":
            raise HubError("this needs an admin token", 403)
        rows: list[dict[str, Any]] = store.nodes()
        tonight = node_nights(store)
        for r in rows:
            r["tonight"] = tonight.get(r["name"])
        return rows
    try:
        rows = await run_in_threadpool(work)
    except HubError as exc:
        return HTMLResponse(render_network(error=str(exc)), status_code=exc.status)
    return HTMLResponse(render_network(rows))


@page_router.get("/", response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The hub's page with the request form."""
    return HTMLResponse(render())


def _form(raw: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise HubError("the form could not be read", 400) from None
    return {k: v[0].strip() for k, v in fields.items() if v}


@page_router.post("/request", response_class=HTMLResponse)
async def submit(request: Request) -> HTMLResponse:
    """Record a request from the form and answer in words (400/401/403/422 with the page)."""
    from .requests import add_request, news

    door: Any = request.app.state.door
    raw = await door.body(request)
    form = _form(raw)
    values = {k: form.get(k, "") for k in ("star", "member", "until")}
    token = form.get("token", "")
    store = door.store

    def work() -> tuple[str, list[str]]:
        door._stranger(request, token)  # the same rate limit as the API for unknown tokens
        who = door._admit(request, door._remember(token, store.authenticate(token))
                          if token else None)
        req = StarRequest(star=values["star"], member=values["member"],
                          until=values["until"] or None)
        answer = add_request(store, who, req)
        return answer["message"], [r["message"] for r in news(store, req.member)["requests"]]
    try:
        message, sentences = await run_in_threadpool(work)
    except HubError as exc:
        return HTMLResponse(render(error=str(exc), values=values), status_code=exc.status)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "form"
        return HTMLResponse(render(error=f"{where}: {first.get('msg')}", values=values),
                            status_code=422)
    return HTMLResponse(render(message=message, news=sentences))
