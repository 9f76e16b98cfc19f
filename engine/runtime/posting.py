"""One signed POST to a receiver, as every HTTP delivery handler sends it.

The shipped webhook, the reporter gateway and the agencies' Standard Webhooks subscriptions all
POST JSON and count any 2xx as delivered. What they share is here: no redirects followed, only
``http``/``https`` URLs, and failures worded with the receiver's scheme and host only (a path
often embeds a token; a body may hold a reporter's contact).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from engine.domain.errors import LaporError
from engine.runtime.delivery import DeliveryError

__all__ = ["Poster", "check_url", "endpoint_of"]


def check_url(url: str, what: str = "webhook") -> str:
    """``url`` if it is ``http(s)://`` with a host; else ``LaporError`` saying so.

    urllib also opens ``file://`` and ``ftp://`` URLs; a handler must never read a local file.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LaporError(f"{what} URL must be http:// or https:// with a host, not {url!r}")
    return url


def endpoint_of(url: str) -> str:
    """What errors and logs may name of ``url``: its scheme, host and port, never its path nor
    a ``user:password@`` in it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:  # not a number: say nothing of it
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib turns a redirected POST into a GET without the body; the 200 at the end of that
    # would mark a message delivered that nobody received. A redirect is a failure instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Poster:
    """POSTs bodies; ``post`` returns on a 2xx answer and raises ``DeliveryError`` otherwise."""

    def __init__(self, timeout: float = 10) -> None:
        if timeout <= 0:
            raise LaporError(f"webhook timeout must be positive, not {timeout}")
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Deliver ``body`` to ``url``. The error never quotes the body or the URL's path."""
        endpoint = endpoint_of(url)
        request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"{endpoint} answered HTTP {exc.code}") from None
        except TimeoutError:
            raise DeliveryError(f"{endpoint} did not answer in {self.timeout} s") from None
        except urllib.error.URLError as exc:
            raise DeliveryError(f"cannot reach {endpoint}: {exc.reason}") from None
        except (OSError, HTTPException) as exc:
            raise DeliveryError(f"{endpoint}: {exc.__class__.__name__}: {exc}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"{endpoint} answered HTTP {status}")
