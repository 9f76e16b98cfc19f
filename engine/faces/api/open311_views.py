"""What the Open311 facade says: services from the workflows, a case as a GeoReport v2 service
request, and a filed request's fields as a case's intake data.

One service per workflow: its ``service_code`` is the workflow's name (``sp4n-lapor``) and its
attributes are the workflow's intake fields (``intake.requires`` required, ``intake.accepts``
optional), less the ones the spec carries itself (``description``; ``location`` from
``address_string``/``lat``/``long``) and ``channel``, which the facade sets to ``open311``. A
category is an attribute rather than a service of its own: categories live in the routing policy
and may change without a new service list.

A request's view has no place for the reporter's identity, and the description of an anonymous or
confidential report is masked (NIK, phone numbers, e-mail addresses) as for every reader but Admin
Nasional in the v1 API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.domain.calendar import REGION_NAMES, zone_for_region
from engine.domain.case import Case
from engine.domain.masking import masked_fields
from engine.domain.model import Model
from engine.faces.api.problems import ApiProblem
from engine.faces.api.track import NEXT_STEPS

__all__ = [
    "CHANNEL",
    "IDENTITY_FIELDS",
    "intake_data",
    "request_view",
    "service_definition",
    "service_summary",
]

CHANNEL = "open311"
IDENTITY_FIELDS = ("email", "first_name", "last_name", "phone", "device_id", "account_id")
_SPEC_FIELDS = frozenset({"description", "location", "channel"})
_FLAGS = frozenset({"anonymous", "confidential"})
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


def _attribute_codes(model: Model) -> list[tuple[str, bool]]:
    fields = [(name, True) for name in model.intake_requires]
    fields += [(name, False) for name in model.intake_accepts]
    return [(name, required) for name, required in fields if name not in _SPEC_FIELDS]


def service_summary(model: Model) -> dict[str, Any]:
    return {
        "service_code": model.name,
        "service_name": model.title,
        "description": f"Pengaduan pelayanan publik ({model.name} {model.version})",
        "metadata": True,
        "type": "realtime",
        "keywords": "pengaduan,lapor,sp4n",
        "group": "pelayanan publik",
    }


def _attribute(code: str, required: bool, order: int) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "variable": True,
        "code": code,
        "datatype": "string",
        "required": required,
        "datatype_description": None,
        "order": order,
        "description": code.replace("_", " "),
    }
    if code == "region":
        attribute["datatype"] = "singlevaluelist"
        attribute["description"] = "province (ISO 3166-2:ID code)"
        attribute["values"] = [{"key": k, "name": n} for k, n in sorted(REGION_NAMES.items())]
    elif code in _FLAGS:
        attribute["datatype"] = "singlevaluelist"
        attribute["values"] = [{"key": "true", "name": "ya"}, {"key": "false", "name": "tidak"}]
    return attribute


def service_definition(model: Model) -> dict[str, Any]:
    return {
        "service_code": model.name,
        "attributes": [
            _attribute(code, required, order)
            for order, (code, required) in enumerate(_attribute_codes(model), start=1)
        ],
    }


def intake_data(
    model: Model,
    attributes: Mapping[str, str],
    description: str | None,
    location: Mapping[str, Any],
) -> dict[str, Any]:
    """The case's intake data for a filed request; a 400 for an attribute the service does
    not have or a flag that is not ``true``/``false``."""
    known = dict(_attribute_codes(model))
    unknown = sorted(set(attributes) - set(known))
    if unknown:
        raise ApiProblem(
            422,
            "invalid_request",
            f"unknown attribute(s) {', '.join(unknown)}; service {model.name} has: "
            f"{', '.join(known)}",
        )
    data: dict[str, Any] = {"channel": CHANNEL}
    for code, value in attributes.items():
        if code in _FLAGS:
            if value.lower() not in _BOOLEAN:
                raise ApiProblem(422, "invalid_request", f"attribute {code} must be true or false")
            data[code] = _BOOLEAN[value.lower()]
        else:
            data[code] = value
    if description:
        data["description"] = description
    if location and "location" in model.intake_accepts:
        data["location"] = dict(location)
    return data


def _local(case: Case, moment: Any) -> str | None:
    return None if moment is None else moment.astimezone(zone_for_region(case.region)).isoformat()


def request_view(case: Case) -> dict[str, Any]:
    """``case`` as a GeoReport v2 service request (the public view)."""
    data = case.data
    description = data.get("description")
    if isinstance(description, str) and (case.anonymous or case.confidential):
        description = masked_fields(description)
    location = data.get("location")
    place: Mapping[str, Any] = location if isinstance(location, Mapping) else {}
    return {
        "service_request_id": case.id,
        "status": "closed" if case.closed else "open",
        "status_notes": case.status,
        "service_name": case.workflow,
        "service_code": case.workflow,
        "description": description if isinstance(description, str) else None,
        "agency_responsible": case.agency,
        "service_notice": NEXT_STEPS.get(case.state),
        "requested_datetime": _local(case, case.opened_at),
        "updated_datetime": _local(case, case.last_at),
        "expected_datetime": None if case.closed else _local(case, case.next_due),
        "address": place.get("address_string"),
        "address_id": place.get("address_id"),
        "zipcode": None,
        "lat": place.get("lat"),
        "long": place.get("long"),
        "media_url": None,
    }
