"""Open311 GeoReport v2 under /open311/v2/ over a real `lapor serve` process: a third-party
client (civicbot, from PyPI) drives it end to end, and httpx checks what civicbot does not
look at (identity kept apart, confidential reports hidden, XML, the spec's errors, the window)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
from civicbot import Endpoint, HttpError, HttpTransport, Open311Client
from civicbot.http import RateLimiter

from engine.faces.api.openapi import document_text
from engine.faces.api.server import openapi_app
from tests.api.conftest import COMPLAINT, Server

BASE = "/open311/v2"
IDENTITY = {
    "email": "siti.open311.leak@example.id",
    "first_name": "Sitiopenleak",
    "last_name": "Rahayuopenleak",
    "phone": "081234567890",
    "device_id": "device-open311-leak",
    "account_id": "account-open311-leak",
}


def _client(server: Server) -> Open311Client:
    endpoint = Endpoint(
        id="lapor-local", name="lapor-sla", base_url=f"{server.url}{BASE}", write=True
    )
    transport = HttpTransport(timeout=30, rate_limiter=RateLimiter(min_interval=0))
    return Open311Client(endpoint, transport=transport)


def _form(server: Server, **extra: str) -> dict[str, str]:
    form = {
        "api_key": server.keys["channel"],
        "service_code": "sp4n-lapor",
        "description": COMPLAINT["description"],
        "address_string": "Jl. Prof. Dr. Soepomo, Tebet",
        "attribute[category]": "kesehatan",
        "attribute[region]": "ID-JK",
    }
    form.update(extra)
    return form


def _file(server: Server, **extra: str) -> str:
    answer = server.call("POST", f"{BASE}/requests.json", data=_form(server, **extra))
    assert answer.status_code == 201, answer.text
    filed: str = answer.json()[0]["service_request_id"]
    return filed


def test_civicbot_lists_defines_files_reads_lists_and_resolves_a_token(server: Server) -> None:
    client = _client(server)
    services = client.list_services()
    assert [s["service_code"] for s in services] == ["sp4n-lapor"]
    definition = client.get_service_definition("sp4n-lapor")
    required = {a["code"] for a in definition["attributes"] if a["required"]}
    assert required == {"category", "region"}

    prepared = client.create_request(
        "sp4n-lapor",
        dry_run=False,
        confirm="SEND",
        api_key=server.keys["channel"],
        validate_remote=True,
        address_string="Puskesmas Tebet, Jakarta Selatan",
        lat=-6.2297,
        lng=106.8537,
        description="Antrean obat di Puskesmas Tebet lebih dari tiga jam.",
        attributes={"category": "kesehatan", "region": "ID-JK"},
        email="warga@example.id",
    )
    filed = prepared.response[0]
    request_id, token = filed["service_request_id"], filed["token"]

    read = client.get_request(request_id)
    assert read is not None
    assert read["status"] == "open" and read["service_code"] == "sp4n-lapor"
    assert read["lat"] == pytest.approx(-6.2297) and read["address"].startswith("Puskesmas")
    assert read["requested_datetime"].endswith("+07:00")
    assert "warga@example.id" not in str(read)

    listed = client.list_requests(page_size=2)
    assert 1 <= len(listed) <= 2 and listed[0]["service_request_id"] == request_id
    assert client.get_token(token) == [{"service_request_id": request_id, "token": token}]


def test_identity_fields_go_to_the_identity_store_never_into_the_case(server: Server) -> None:
    case = _file(server, **IDENTITY)
    stored = server.call("GET", f"/v1/complaints/{case}/identity", who="admin").json()
    assert stored["identity"] == IDENTITY
    as_admin = server.call("GET", f"/v1/complaints/{case}", who="admin")
    assert as_admin.json()["data"]["channel"] == "open311"
    public = server.call("GET", f"{BASE}/requests/{case}.json")
    filings = [
        json.loads(line)
        for line in server.log_text().splitlines()
        if '"path": "/open311/v2/requests.json"' in line and '"method": "POST"' in line
    ]
    assert filings and all(entry["key_id"] for entry in filings if entry["status"] == 201)
    listed = server.call("GET", f"{BASE}/requests.xml", params={"service_request_id": case})
    for text in (as_admin.text, public.text, listed.text, server.log_text()):
        for value in IDENTITY.values():
            assert value not in text


def test_expected_datetime_is_the_due_instant_of_the_running_sla_clock(server: Server) -> None:
    case = _file(server)
    clocks = server.call("GET", f"/v1/complaints/{case}", who="admin").json()["clocks"]
    due = min(datetime.fromisoformat(c["due_at"]) for c in clocks if c["running"])
    view = server.call("GET", f"{BASE}/requests/{case}.json").json()[0]
    assert view["expected_datetime"].endswith("+07:00")
    assert datetime.fromisoformat(view["expected_datetime"]) == due
    assert view["status_notes"] == "Belum Terverifikasi"
    assert datetime.fromisoformat(view["updated_datetime"]) >= datetime.fromisoformat(
        view["requested_datetime"]
    )


def test_confidential_reports_never_appear_in_public_reads(server: Server) -> None:
    hidden = _file(server, **{"attribute[confidential]": "true"})
    shown = _file(server)
    assert server.call("GET", f"{BASE}/requests/{hidden}.json").status_code == 404
    assert server.call("GET", f"{BASE}/tokens/{hidden}.json").status_code == 404
    both = server.call(
        "GET", f"{BASE}/requests.json", params={"service_request_id": f"{hidden},{shown}"}
    ).json()
    assert [r["service_request_id"] for r in both] == [shown]
    listed = server.call("GET", f"{BASE}/requests.json", params={"page_size": 100}).json()
    ids = {r["service_request_id"] for r in listed}
    assert shown in ids and hidden not in ids
    # It exists, for Admin Nasional through the v1 API.
    assert server.call("GET", f"/v1/complaints/{hidden}", who="admin").status_code == 200


def test_anonymous_report_text_is_masked_in_public_reads(server: Server) -> None:
    case = _file(
        server,
        description="Hubungi saya di 081298765432 soal pungli.",
        **{"attribute[anonymous]": "true"},
    )
    view = server.call("GET", f"{BASE}/requests/{case}.json").json()[0]
    assert "081298765432" not in view["description"] and "pungli" in view["description"]


def test_every_resource_answers_xml_with_escaped_text(server: Server) -> None:
    case = _file(server, description='Pagar <rusak> & "berbahaya" di sekolah')
    for path, root in [
        ("discovery.xml", "discovery"),
        ("services.xml", "services"),
        ("services/sp4n-lapor.xml", "service_definition"),
        (f"requests/{case}.xml", "service_requests"),
        ("requests.xml", "service_requests"),
        (f"tokens/{case}.xml", "service_requests"),
    ]:
        answer = server.call("GET", f"{BASE}/{path}")
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"].startswith("text/xml")
        assert answer.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
        assert ElementTree.fromstring(answer.content).tag == root
    document = ElementTree.fromstring(server.call("GET", f"{BASE}/requests/{case}.xml").content)
    assert document.findtext("request/description") == 'Pagar <rusak> & "berbahaya" di sekolah'
    assert document.findtext("request/status") == "open"
    region = ElementTree.fromstring(
        server.call("GET", f"{BASE}/services/sp4n-lapor.xml").content
    ).find("attributes/attribute[code='region']")
    assert region is not None and region.find("values/value/key") is not None


def test_filing_as_xml_answers_the_new_request_in_xml(server: Server) -> None:
    answer = server.call("POST", f"{BASE}/requests.xml", data=_form(server))
    assert answer.status_code == 201, answer.text
    request = ElementTree.fromstring(answer.content).find("request")
    assert request is not None and request.findtext("service_request_id")


@pytest.mark.parametrize(
    ("path", "form", "status", "words"),
    [
        ("requests.json", {"api_key": "lapor_not-a-key"}, 403, "api_key"),
        ("requests.json", {"api_key": None}, 403, "api_key"),
        ("requests.json", {"service_code": "sampah"}, 404, "no service"),
        ("requests.json", {"attribute[region]": None}, 400, "region"),
        ("requests.json", {"attribute[warna]": "merah"}, 400, "unknown attribute"),
        ("requests.json", {"attribute[anonymous]": "mungkin"}, 400, "true or false"),
        ("requests.json", {"address_string": None}, 400, "location"),
        ("requests.json", {"lat": "91", "long": "106"}, 400, "lat"),
        ("requests.yaml", {}, 400, "fmt"),
    ],
)
def test_a_bad_filing_gets_one_spec_error(
    server: Server, path: str, form: dict[str, str | None], status: int, words: str
) -> None:
    sent = {k: v for k, v in {**_form(server), **form}.items() if v is not None}
    answer = server.call("POST", f"{BASE}/{path}", data=sent)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    [error] = answer.json()
    assert error["code"] == status and words in error["description"]


def test_an_agency_key_may_not_file_requests(server: Server) -> None:
    answer = server.call(
        "POST", f"{BASE}/requests.json", data=_form(server, api_key=server.keys["kemenkes"])
    )
    assert answer.status_code == 403
    assert "agency" in answer.json()[0]["description"]


def test_errors_under_an_xml_path_are_spec_errors_in_xml(server: Server) -> None:
    answer = server.call("GET", f"{BASE}/requests/NOSUCHCASE.xml")
    assert answer.status_code == 404
    error = ElementTree.fromstring(answer.content).find("error")
    assert error is not None and error.findtext("code") == "404"


def test_unknown_service_definition_is_404_naming_the_services(server: Server) -> None:
    answer = server.call("GET", f"{BASE}/services/sampah.json")
    assert answer.status_code == 404
    assert "sp4n-lapor" in answer.json()[0]["description"]


def _listed(server: Server, **params: Any) -> Any:
    return server.call("GET", f"{BASE}/requests.json", params=params)


def test_listing_keeps_to_the_date_window_and_the_status(server: Server) -> None:
    case = _file(server)

    def ids(answer: Any) -> set[str]:
        assert answer.status_code == 200, answer.text
        return {r["service_request_id"] for r in answer.json()}

    now = datetime.now().astimezone()
    assert case in ids(_listed(server, start_date=(now - timedelta(days=1)).isoformat()))
    later = (now + timedelta(days=1)).isoformat()
    assert case not in ids(_listed(server, start_date=later))
    assert case not in ids(_listed(server, status="closed"))
    assert case in ids(_listed(server, status="open", service_code="sp4n-lapor"))
    assert case not in ids(_listed(server, service_code="lain"))


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start_date": "2026-01-01T00:00:00+07:00", "end_date": "2026-06-01T00:00:00+07:00"},
         "90 days"),
        ({"start_date": "2026-01-01"}, "time zone"),
        ({"start_date": "kemarin"}, "time zone"),
        ({"status": "pending"}, "status"),
        ({"page_size": "500"}, "page_size"),
    ],
)  # fmt: skip
def test_a_bad_listing_gets_one_spec_error(
    server: Server, params: dict[str, str], words: str
) -> None:
    answer = _listed(server, **params)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()[0]["description"]


def test_status_filter_finds_a_closed_request_behind_newer_open_ones(server: Server) -> None:
    archived = _file(server)
    archive = server.call(
        "POST", f"/v1/complaints/{archived}/signals/archive", who="admin",
        json={"data": {"reason": "Bukan pelayanan publik."}},
    )  # fmt: skip
    assert archive.status_code == 200, archive.text
    for _ in range(3):
        _file(server)
    closed = _listed(server, status="closed", page_size=1).json()
    assert [(r["service_request_id"], r["status"]) for r in closed] == [(archived, "closed")]
    assert closed[0]["expected_datetime"] is None


def test_paging_walks_the_list_without_overlap(server: Server) -> None:
    for _ in range(3):
        _file(server)
    first = [r["service_request_id"] for r in _listed(server, page_size=2).json()]
    second = [r["service_request_id"] for r in _listed(server, page_size=2, page=2).json()]
    assert len(first) == 2 and len(second) == 2 and not set(first) & set(second)


def test_open311_errors_are_declared_as_the_spec_error_list_in_json_and_xml() -> None:
    document = json.loads(document_text(openapi_app()))
    paths = {p: ops for p, ops in document["paths"].items() if p.startswith(BASE)}
    assert len(paths) == 6  # requests.{fmt} has GET and POST
    for operations in paths.values():
        for operation in operations.values():
            responses = operation["responses"]
            assert "400" in responses and "422" not in responses
            for status, response in responses.items():
                media = ["application/json", "text/xml"]
                assert sorted(response["content"]) == media, status
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Open311Errors"}


def test_civicbot_reports_a_spec_error_as_an_http_error(server: Server) -> None:
    with pytest.raises(HttpError) as raised:
        _client(server).get_request("NOSUCHCASE")
    assert raised.value.status == 404 and '"code": 404' in raised.value.body
