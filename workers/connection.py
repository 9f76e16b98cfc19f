"""Where and how to reach Temporal: address, namespace, task queue and credentials.

A local dev server takes a plain connection. A self-hosted cluster usually wants TLS, often
mutual TLS (a client certificate and key); Temporal Cloud takes either mutual TLS or an API key
over TLS. Every ``lapor`` command that talks to Temporal reads the same settings, as flags on
``lapor worker`` and from the environment everywhere:

    LAPOR_TEMPORAL             host:port (also --temporal)
    LAPOR_TEMPORAL_NAMESPACE   namespace (default "default")
    LAPOR_TEMPORAL_TASK_QUEUE  task queue (default "lapor")
    LAPOR_TEMPORAL_API_KEY     API key (implies TLS)
    LAPOR_TEMPORAL_TLS         1 to use TLS with the system's root certificates
    LAPOR_TEMPORAL_TLS_CERT, LAPOR_TEMPORAL_TLS_KEY   client certificate and key, PEM (mutual TLS)
    LAPOR_TEMPORAL_TLS_CA      server CA certificate, PEM (a private CA)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.domain.errors import LaporError

if TYPE_CHECKING:  # the SDK takes ~0.5 s to import; `lapor demo` and friends never need it
    from temporalio.client import Client
    from temporalio.service import TLSConfig

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_TASK_QUEUE", "TemporalTarget"]

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_TASK_QUEUE = "lapor"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class TemporalTarget:
    address: str = DEFAULT_ADDRESS
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    api_key: str | None = None
    tls: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None
    server_ca: Path | None = None

    @classmethod
    def from_env(
        cls, address: str | None = None, environ: Mapping[str, str] | None = None, **given: Any
    ) -> TemporalTarget:
        """Settings from ``LAPOR_TEMPORAL_*``; ``address`` and non-``None`` ``given`` win."""
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value) if value else None

        target = cls(
            address=address or env.get("LAPOR_TEMPORAL") or DEFAULT_ADDRESS,
            namespace=env.get("LAPOR_TEMPORAL_NAMESPACE") or "default",
            task_queue=env.get("LAPOR_TEMPORAL_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
            api_key=env.get("LAPOR_TEMPORAL_API_KEY") or None,
            tls=env.get("LAPOR_TEMPORAL_TLS", "").strip().lower() in _TRUE,
            client_cert=path("LAPOR_TEMPORAL_TLS_CERT"),
            client_key=path("LAPOR_TEMPORAL_TLS_KEY"),
            server_ca=path("LAPOR_TEMPORAL_TLS_CA"),
        )
        return replace(target, **{k: v for k, v in given.items() if v is not None})

    def tls_config(self) -> TLSConfig | bool:
        """What ``Client.connect(tls=...)`` needs: ``False``, ``True`` (system roots) or a
        ``TLSConfig`` with the given PEM files read in."""
        if (self.client_cert is None) != (self.client_key is None):
            raise LaporError(
                "mutual TLS needs both a client certificate and its key "
                "(--tls-cert and --tls-key, or LAPOR_TEMPORAL_TLS_CERT and LAPOR_TEMPORAL_TLS_KEY)"
            )
        if self.client_cert is None and self.server_ca is None:
            return self.tls or self.api_key is not None
        from temporalio.service import TLSConfig

        return TLSConfig(
            server_root_ca_cert=_read(self.server_ca, "server CA certificate"),
            client_cert=_read(self.client_cert, "client certificate"),
            client_private_key=_read(self.client_key, "client key"),
        )

    def describe(self) -> str:
        """For messages: never the API key or the key file's contents."""
        tls = self.tls_config()
        how = "mutual TLS" if not isinstance(tls, bool) and self.client_cert else "TLS"
        how = how if tls else "plain text"
        if self.api_key:
            how += " + API key"
        return f"{self.address} namespace={self.namespace} ({how})"

    async def connect(self) -> Client:
        from temporalio.client import Client

        try:
            return await Client.connect(
                self.address,
                namespace=self.namespace,
                api_key=self.api_key,
                tls=self.tls_config(),
            )
        except RuntimeError as exc:  # the SDK's bridge: "Failed client connect: ..."
            raise LaporError(
                f"cannot reach Temporal at {self.describe()}: {exc}; "
                "is a server running there (`lapor temporal dev`)?"
            ) from None


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LaporError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
