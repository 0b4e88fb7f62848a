"""The one way Verdict code opens a gRPC channel: every client in the project (the trackers,
`LocalEvaluator`, the assignment service's exposure sender, the analysis service's stopper, the
launcher's health checks, the console) calls `aio_channel` or `sync_channel`, so TLS, mTLS and
the server name are configured in one place (`ChannelSecurity`).

Also here: the status codes worth retrying (`RETRYABLE`) and the bearer metadata of an API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

__all__ = ["PLAINTEXT", "RETRYABLE", "ChannelSecurity", "aio_channel", "bearer", "sync_channel"]

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""Status codes after which an idempotent call may be repeated (Verdict's writes carry
client-generated ids: a repeated batch is never counted twice)."""

ChannelOptions = Sequence[tuple[str, int | str]]


@dataclass(frozen=True)
class ChannelSecurity:
    """How a client channel is secured. The default is plaintext (a local, trusted network)."""

    tls: bool = False
    """Use TLS. With no `root_certificates`, the system's trust store verifies the server."""
    root_certificates: bytes | None = field(default=None, repr=False)
    """PEM bundle of the CAs that may sign the server's certificate."""
    certificate_chain: bytes | None = field(default=None, repr=False)
    """PEM client certificate (mTLS), with `private_key`."""
    private_key: bytes | None = field(default=None, repr=False)
    """PEM private key of `certificate_chain`."""
    server_name: str | None = None
    """Name the server's certificate must carry when it differs from the target's host (e.g. a
    target given as an IP address); the certificate is always checked."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("a client certificate needs its private key, and the reverse")
        if not self.tls and (self.root_certificates or self.certificate_chain or self.server_name):
            raise ValueError("certificates and a server name need tls=True")

    @classmethod
    def from_files(
        cls,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        server_name: str | None = None,
    ) -> ChannelSecurity:
        """TLS with the given PEM files (any may be None: system roots, no client certificate)."""
        return cls(
            tls=True,
            root_certificates=ca_file.read_bytes() if ca_file else None,
            certificate_chain=cert_file.read_bytes() if cert_file else None,
            private_key=key_file.read_bytes() if key_file else None,
            server_name=server_name,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials for TLS (only when `tls`)."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def options(self) -> list[tuple[str, int | str]]:
        """Channel arguments this security needs (the server name override)."""
        if self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []


PLAINTEXT = ChannelSecurity()
"""A plaintext channel: the default, for a local or otherwise trusted network."""


def aio_channel(
    target: str, security: ChannelSecurity = PLAINTEXT, options: ChannelOptions = ()
) -> grpc.aio.Channel:
    """An asyncio channel to `target` secured as `security` says."""
    opts = [*options, *security.options()]
    if security.tls:
        return grpc.aio.secure_channel(target, security.credentials(), opts)
    return grpc.aio.insecure_channel(target, opts)


def sync_channel(
    target: str, security: ChannelSecurity = PLAINTEXT, options: ChannelOptions = ()
) -> grpc.Channel:
    """A blocking channel to `target` secured as `security` says."""
    opts = [*options, *security.options()]
    if security.tls:
        return grpc.secure_channel(target, security.credentials(), opts)
    return grpc.insecure_channel(target, opts)


def bearer(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying `api_key` (empty without one)."""
    return () if api_key is None else (("authorization", f"Bearer {api_key}"),)
