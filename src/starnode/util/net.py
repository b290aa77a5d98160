"""Listening sockets bound before a server says where it is.

A server that prints its address and only then finds the port taken looks like a success to
whoever reads the first line. :func:`bind_listen` binds first, so the caller can print the
address only once it is true, or say in one line why it is not (:class:`ListenError`).
"""

from __future__ import annotations

import errno
import socket

from ..errors import StarnodeError

__all__ = ["ListenError", "bind_listen"]


class ListenError(StarnodeError, OSError):
    """The address cannot be listened on (in use, not this machine's, not allowed)."""


def bind_listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening; the server calls ``listen``).

    Parameters
    ----------
    host : str
        Name or address (``127.0.0.1``, ``::1``, ``0.0.0.0``, ``localhost``).
    port : int
        1 to 65535.

    Returns
    -------
    socket.socket
        Bound, with ``SO_REUSEADDR`` (a restart right after a stop is not refused).

    Raises
    ------
    ListenError
        With a message for one line: which address and why, and what to do.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not 1 <= int(port) <= 65535:
        raise ListenError(f"cannot listen on {where}: a port is a number from 1 to 65535")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {where}: unknown address ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        hint = {errno.EADDRINUSE: "; another program (or another starnode) uses that port: "
                "stop it or choose another port",
                errno.EACCES: "; ports below 1024 need privileges: choose a port above 1023",
                errno.EADDRNOTAVAIL: "; that address is not one of this computer's"}.get(
                    exc.errno or 0, "")
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}{hint}") from None
    return sock
