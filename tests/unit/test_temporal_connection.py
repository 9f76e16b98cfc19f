"""``TemporalTarget``: the settings every Temporal command reads (flags, LAPOR_TEMPORAL_*)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from engine.domain.errors import LaporError
from workers.connection import TemporalTarget


def test_settings_come_from_the_environment_and_given_values_win(tmp_path: Path) -> None:
    env = {
        "LAPOR_TEMPORAL": "temporal.internal:7233",
        "LAPOR_TEMPORAL_NAMESPACE": "lapor-prod",
        "LAPOR_TEMPORAL_TASK_QUEUE": "lapor-jawa",
        "LAPOR_TEMPORAL_TLS": "1",
    }
    target = TemporalTarget.from_env(None, env)
    assert (target.address, target.namespace, target.task_queue, target.tls) == (
        "temporal.internal:7233",
        "lapor-prod",
        "lapor-jawa",
        True,
    )
    given = TemporalTarget.from_env("other:7233", env, namespace="staging", task_queue=None)
    assert (given.address, given.namespace, given.task_queue) == (
        "other:7233",
        "staging",
        "lapor-jawa",
    )


def test_a_local_dev_server_takes_a_plain_connection() -> None:
    assert TemporalTarget.from_env(None, {}).tls_config() is False
    assert (
        TemporalTarget.from_env(None, {}).describe()
        == "127.0.0.1:7233 namespace=default (plain text)"
    )


def test_an_api_key_implies_tls_and_is_never_described() -> None:
    target = TemporalTarget.from_env(
        "ns.acct.tmprl.cloud:7233", {"LAPOR_TEMPORAL_API_KEY": "s3cr3t"}
    )
    assert target.tls_config() is True
    assert "s3cr3t" not in target.describe()
    assert target.describe().endswith("(TLS + API key)")


def test_mutual_tls_reads_the_pem_files(tmp_path: Path) -> None:
    cert, key, ca = tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    ca.write_bytes(b"CA")
    env = {
        "LAPOR_TEMPORAL_TLS_CERT": str(cert),
        "LAPOR_TEMPORAL_TLS_KEY": str(key),
        "LAPOR_TEMPORAL_TLS_CA": str(ca),
    }
    tls = TemporalTarget.from_env(None, env).tls_config()
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert) == (
        b"CERT",
        b"KEY",
        b"CA",
    )
    assert "mutual TLS" in TemporalTarget.from_env(None, env).describe()


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_bytes(b"CERT")
    with pytest.raises(LaporError, match="both a client certificate and its key"):
        TemporalTarget(client_cert=cert).tls_config()


def test_an_unreadable_pem_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(LaporError, match=f"cannot read the server CA certificate {missing}"):
        TemporalTarget(server_ca=missing).tls_config()
