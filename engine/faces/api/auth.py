"""FastAPI dependencies that authenticate a call (``Authorization: Bearer <key>``) and count it
against its rate limit; a failed attempt counts against the client's address, so guessing keys
is rate limited too."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.faces.api.principals import Principal
from engine.faces.api.problems import ApiProblem
from engine.faces.api.service import Service, service

__all__ = ["Caller", "anonymous_caller", "authenticated"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `lapor keys create`: `Authorization: Bearer lapor_...`.",
)


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    found: Annotated[Service, Depends(service)],
) -> Principal:
    """The caller of this request, or a 401 (no key, an unknown or a revoked one)."""
    key = None if credentials is None else await found.authenticate(credentials.credentials)
    if key is None:
        found.limiter.hit("address", _address(request))
        raise ApiProblem(
            401,
            "unauthorized",
            "send a valid API key as `Authorization: Bearer <key>` (`lapor keys create`)",
            headers={"WWW-Authenticate": 'Bearer realm="lapor"'},
        )
    request.state.key_id = key.id  # for the request log: the id, never the key
    found.limiter.hit("key", key.id)
    return Principal(key)


async def anonymous_caller(request: Request, found: Annotated[Service, Depends(service)]) -> None:
    """Count a call without a key (``/v1/track``) against the client's address."""
    found.limiter.hit("address", _address(request))


Caller = Annotated[Principal, Depends(authenticated)]
