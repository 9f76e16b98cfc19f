"""How the Open311 facade answers: JSON or XML (GeoReport v2 requires XML; the format is the
path's suffix, ``services.xml``), and errors as the spec's ``[{"code", "description"}]`` list
(``<errors><error>`` in XML) rather than the v1 API's problem details.

The errors are converted in one place, ``Open311Errors``: every refusal under ``/open311/``
(request validation, the rate limit, an unknown case, the body limit, a timeout...) is first
answered as a problem detail by the API's usual handlers and guards, and this middleware rewrites
it, keeping its status, its headers (``Retry-After``) and its ``detail`` as the description. A
request validation error (422) becomes the spec's 400.

XML is built with ``xml.etree.ElementTree`` (text escaped by it; characters XML 1.0 cannot carry
are dropped first); no input is ever parsed as XML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree

from fastapi.responses import Response

from engine.faces.api.guards import Message, Receive, Scope, Send
from engine.faces.api.problems import PROBLEM_MEDIA_TYPE

__all__ = [
    "JSON_MEDIA_TYPE",
    "OPEN311_PREFIX",
    "XML_MEDIA_TYPE",
    "Open311Errors",
    "declare_open311_errors",
    "error_body",
    "render",
    "to_xml",
]

OPEN311_PREFIX = "/open311/"
JSON_MEDIA_TYPE = "application/json"
XML_MEDIA_TYPE = "text/xml"

# The element of one item of each list the spec names (``<services><service>``...).
_ITEMS: Mapping[str, str] = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "keywords": "keyword",
}
# Control characters XML 1.0 has no way to carry, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _fill(element: ElementTree.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _fill(ElementTree.SubElement(element, key), item)
    elif isinstance(value, list):
        name = _ITEMS.get(element.tag, "item")
        for item in value:
            _fill(ElementTree.SubElement(element, name), item)
    elif value is not None:
        element.text = _text(value)


def to_xml(root: str, value: Any) -> bytes:
    """``value`` (JSON-like) as an XML document whose root element is ``root``."""
    element = ElementTree.Element(root)
    _fill(element, value)
    body = ElementTree.tostring(element, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")


def render(value: Any, fmt: str, root: str, status: int = 200) -> Response:
    """``value`` in the requested format; ``root`` names the XML root element."""
    if fmt == "xml":
        return Response(to_xml(root, value), status, media_type=XML_MEDIA_TYPE)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Response(text.encode("utf-8"), status, media_type=JSON_MEDIA_TYPE)


def error_body(status: int, description: str, *, xml: bool) -> bytes:
    """The spec's error list with one error."""
    errors = [{"code": status, "description": description}]
    if xml:
        return to_xml("errors", errors)
    return json.dumps(errors, ensure_ascii=False).encode("utf-8")


class Open311Errors:
    """Rewrite a problem-detail answer under ``/open311/`` as the spec's error list."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(OPEN311_PREFIX):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _is_problem(message):
                held = message
                return
            if held is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await _send_error(held, b"".join(chunks), path, send)

        await self.app(scope, receive, rewrite)


def _is_problem(start: Message) -> bool:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return bytes(value).startswith(PROBLEM_MEDIA_TYPE.encode())
    return False


async def _send_error(start: Message, problem: bytes, path: str, send: Send) -> None:
    status = int(start["status"])
    try:
        description = str(json.loads(problem).get("detail", "the request was refused"))
    except (ValueError, AttributeError):
        description = "the request was refused"
    if status == 422:
        status = 400  # the spec's code for a missing or invalid parameter
    xml = path.endswith(".xml")
    body = error_body(status, description, xml=xml)
    media = f"{XML_MEDIA_TYPE if xml else JSON_MEDIA_TYPE}; charset=utf-8"
    kept = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in (b"content-type", b"content-length")
    ]
    headers = [
        *kept,
        (b"content-type", media.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_ERRORS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Open311 GeoReport v2 errors: the HTTP status as `code`, and why",
    "items": {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
        "required": ["code", "description"],
    },
}


def declare_open311_errors(schema: dict[str, Any]) -> None:
    """In an OpenAPI document, declare the error responses of the ``/open311/`` paths as the
    spec's error list (JSON or XML) instead of problem details."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Open311Errors"] = dict(
        _ERRORS_SCHEMA
    )
    content = {
        JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Open311Errors"}},
        XML_MEDIA_TYPE: {"schema": {"type": "string"}},
    }
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(OPEN311_PREFIX):
            continue
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses:  # answered as the spec's 400 (``_send_error``)
                del responses["422"]
                responses["400"] = {"description": "A parameter is missing or invalid"}
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = json.loads(json.dumps(content))
