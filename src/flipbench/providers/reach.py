"""Is an API endpoint there at all? One TCP connection before a run is created.

Without it a dead endpoint (a server not started, a wrong port, a typo in a `*_BASE_URL`) is
found by the retry loop: twenty requests with back-off, half a minute, then a journaled
`failed` run that holds nothing. A refused or unanswered connection is instead one error line
naming the URL that was tried, within seconds, before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from urllib.parse import urlsplit

from flipbench.errors import FlipbenchError
from flipbench.safety import clean_url

#: The longest a connection may take to be accepted before the endpoint counts as dead.
CONNECT_TIMEOUT_S = 10.0


def _reason(exc: OSError) -> str:
    """`connection refused`, `name or service not known`: the OS's words, not aiohttp's."""
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror.lower()
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def check_reachable(
    base_url: str, service: str, *, hint: str = "", timeout_s: float = CONNECT_TIMEOUT_S
) -> None:
    """Open (and close) one TCP connection to the host and port of `base_url`, directly, as
    the HTTP client does (it reads no proxy settings); raise a FlipbenchError naming the URL
    when the connection is refused, the name does not resolve or nothing answers in time."""
    shown = clean_url(base_url)
    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise FlipbenchError(f"{service}: cannot read the URL {shown}: {exc}{hint}") from None
    if not host:
        raise FlipbenchError(f"{service}: the URL {shown} names no host{hint}")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        raise FlipbenchError(
            f"cannot reach {service} at {shown}: no answer within {timeout_s:g} s{hint}"
        ) from None
    except OSError as exc:
        raise FlipbenchError(f"cannot reach {service} at {shown}: {_reason(exc)}{hint}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
