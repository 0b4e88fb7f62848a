"""`python -m verdict_dashboard`: the console on VERDICT_DASHBOARD_PORT (default 8080)."""

from __future__ import annotations

import sys

import uvicorn

from verdict_dashboard.app import build_app
from verdict_dashboard.config import DashboardSettings
from verdict_platform.logs import configure_logging
from verdict_platform.settings import SettingsError, load_settings


def main() -> int:
    try:
        platform = load_settings()
        settings = DashboardSettings.from_env(platform=platform)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(platform, "dashboard")
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # the platform's logging: one format for every process
        proxy_headers=False,
        server_header=False,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
