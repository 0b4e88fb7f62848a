"""The container image's health check: `python -m verdict_platform.healthcheck [COMPONENT]`.

Asks the process in this container whether it serves: the standard gRPC health service of a
gRPC service (over TLS/mTLS when the platform runs TLS, through the one channel factory), or
`GET /healthz` of the console. Exit status 0 when SERVING, 1 otherwise, with the reason on
stderr: what Docker's HEALTHCHECK, compose and a Kubernetes `exec` probe read.

It replaces a downloaded `grpc_health_probe` binary: the image already has Python and grpcio.
Kubernetes' native `grpc:` probes cannot speak TLS, so the chart uses this script as its probe
when TLS is on. The component is the argument, else `VERDICT_COMPONENT` (set by the image).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from verdict.channels import sync_channel
from verdict_platform.settings import Settings, SettingsError, load_settings


@dataclass(frozen=True)
class Component:
    """A process the image can run: its settings field for the port, and how to ask it."""

    port_field: str
    protocol: str  # "grpc" or "http"

    def port(self, settings: Settings) -> int:
        """The port it serves on, as the container's settings say."""
        value: int = getattr(settings, self.port_field)
        return value


COMPONENTS = {
    "assignment": Component("assignment_port", "grpc"),
    "ingest": Component("ingest_port", "grpc"),
    "analysis": Component("analysis_port", "grpc"),
    "dashboard": Component("dashboard_port", "http"),
}


def check_grpc(target: str, settings: Settings, timeout_s: float) -> str | None:
    """None when the gRPC health service at `target` answers SERVING, else why not."""
    with sync_channel(target, settings.channel_security()) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError as error:
            return f"{target}: {error.code().name} {error.details()}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def check_http(url: str, timeout_s: float) -> str | None:
    """None when `url` answers 200, else why not. A console serving HTTPS on this host is
    asked without verifying its certificate: the check is about liveness, on loopback."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as reply:
            status: int = reply.status
    except urllib.error.HTTPError as error:
        return f"{url}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {error}"
    return None if status == 200 else f"{url}: HTTP {status}"


def check(component: str, settings: Settings, host: str, timeout_s: float) -> str | None:
    """None when `component` serves on `host`, else the reason."""
    spec = COMPONENTS[component]
    port = spec.port(settings)
    if spec.protocol == "http":
        scheme = "https" if os.environ.get("VERDICT_DASHBOARD_TLS_CERT_FILE") else "http"
        return check_http(f"{scheme}://{host}:{port}/healthz", timeout_s)
    return check_grpc(f"{host}:{port}", settings, timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when the component serves, 1 when not, 2 on a usage error."""
    parser = argparse.ArgumentParser(prog="python -m verdict_platform.healthcheck")
    parser.add_argument("component", nargs="?", default=os.environ.get("VERDICT_COMPONENT"))
    parser.add_argument("--host", default="127.0.0.1", help="where the process listens")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)
    if args.component not in COMPONENTS:
        print(f"component must be one of {', '.join(COMPONENTS)}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    problem = check(args.component, settings, args.host, args.timeout)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
