"""``starnode serve``: the morning after, as a small local web page.

Why: the terminal and a PNG serve only some observers. This page gives everyone -- screen
reader, keyboard only, 200 % zoom, high-contrast mode -- tonight's status, the frames and why
some were skipped, each target's light curve (the PNG with a real text alternative, the data as
a table, the sound), the plain-language summary and the outbox files to download.

Server-rendered HTML (FastAPI + Jinja2, the hub's framework), one static CSS file, no
JavaScript. Read only. On loopback (the default, 127.0.0.1) no login is needed; bound to any
other address it asks for a token (:mod:`.auth`).

- :mod:`.app` - :func:`create_app`, :func:`serve`
- :mod:`.routes` - the pages (all reads go through :func:`starnode.morning.summary.load_snapshot`)
- :mod:`.auth` - loopback or token, read only
"""

from __future__ import annotations

from .app import create_app, serve
from .auth import TOKEN_ENV, is_loopback

__all__ = ["TOKEN_ENV", "create_app", "is_loopback", "serve"]
