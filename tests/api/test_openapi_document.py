"""The OpenAPI document checked in as docs/openapi.json is the one the code generates, and it
declares every problem response as application/problem+json."""

from __future__ import annotations

import json
from pathlib import Path

from engine.faces.api.openapi import REGENERATE, document_text
from engine.faces.api.server import openapi_app

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_checked_in_openapi_document_is_the_generated_one() -> None:
    generated = document_text(openapi_app())
    assert CHECKED_IN.read_text(encoding="utf-8") == generated, (
        f"docs/openapi.json is stale; regenerate it with `{REGENERATE}`"
    )


def test_every_error_response_is_a_declared_problem_and_none_is_fastapis_default() -> None:
    document = json.loads(document_text(openapi_app()))
    assert document["openapi"].startswith("3.1")
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        if path.startswith("/open311/"):
            continue  # the spec's own error list (tests/api/test_open311.py)
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )
            if path.startswith("/v1/complaints") or path == "/v1/workflows":
                assert "401" in operation["responses"], (method, path)
