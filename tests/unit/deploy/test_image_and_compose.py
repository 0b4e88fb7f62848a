"""The image definition and the compose stack, checked offline (no Docker engine here): what
each must hold for the platform to run as documented."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SERVICES = ("assignment", "ingest", "analysis", "dashboard")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_image_is_multi_stage_and_the_runtime_has_no_compiler() -> None:
    _, build, runtime = stages()
    assert build[0][1].endswith("AS build") and runtime[0][1].endswith("AS runtime")
    assert any("gcc" in args for word, args in build if word == "RUN")
    assert not any("gcc" in args or "apt-get" in args for word, args in runtime if word == "RUN")
    copies = [args for word, args in runtime if word == "COPY"]
    assert copies and all(args.startswith("--from=build ") for args in copies)


def test_runtime_runs_as_a_non_root_user() -> None:
    runtime = stages()[-1]
    users = [args for word, args in runtime if word == "USER"]
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root")
    # The USER comes after everything that needs root.
    last_user = max(i for i, (word, _) in enumerate(runtime) if word == "USER")
    assert all(word != "RUN" for word, _ in runtime[last_user:])


def test_c_accelerators_are_built_and_their_presence_is_checked() -> None:
    build = stages()[1]
    runs = " ".join(args for word, args in build if word == "RUN")
    assert "scripts/build_native.py" in runs
    # build_native.py only warns without a compiler: the image build must fail instead.
    assert "_native*.so" in runs and "_fastpath*.so" in runs


def test_health_is_checked_by_the_images_own_grpc_health_check() -> None:
    instructions = dockerfile()
    (health,) = [args for word, args in instructions if word == "HEALTHCHECK"]
    assert '"-m", "verdict_platform.healthcheck"' in health
    assert "grpc_health_probe" not in (DEPLOY / "Dockerfile").read_text().replace(
        "no downloaded grpc_health_probe", ""
    )
    env = " ".join(args for word, args in instructions if word == "ENV")
    assert "VERDICT_HOST=0.0.0.0" in env and "VERDICT_COMPONENT=" in env


def test_image_installs_the_runtime_packages_at_the_locked_versions() -> None:
    from importlib import util

    spec = util.spec_from_file_location(
        "runtime_requirements", ROOT / "scripts" / "runtime_requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wanted = module.runtime_requirements()
    locked = set((ROOT / "requirements.lock").read_text().split())
    assert wanted and set(wanted) <= locked
    names = {w.split("==")[0].lower() for w in wanted}
    assert {"grpcio", "asyncpg", "redis", "numpy", "scipy"} <= names
    assert not names & {"pytest", "mypy", "ruff", "grpcio-tools", "kubernetes-validate"}
    runs = " ".join(args for word, args in stages()[1] if word == "RUN")
    assert "runtime_requirements.py" in runs and "-c requirements.lock" in runs


def test_console_libraries_come_from_the_npm_lockfile_into_its_static_folder() -> None:
    frontend, build, _ = stages()
    assert frontend[0][1].endswith("AS frontend")
    runs = " ".join(args for word, args in frontend if word == "RUN")
    assert "npm ci" in runs  # the lockfile's versions, as make setup installs them
    for library in ("htmx.min.js", "echarts.min.js"):
        assert library in runs
    copies = [args for word, args in build if word == "COPY" and args.startswith("--from=frontend")]
    assert copies == ["--from=frontend /vendor services/dashboard/verdict_dashboard/static/vendor"]
    served = (ROOT / "services/dashboard/verdict_dashboard/templates").rglob("*.html")
    assert any("vendor/htmx.min.js" in page.read_text() for page in served)


def test_build_context_lets_in_what_the_dockerfile_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    allowed = [line[1:] for line in ignore if line.startswith("!")]

    def let_in(source: str) -> bool:
        source = source.rstrip("/")
        return any(
            source == a or (a.endswith("/**") and (source + "/").startswith(a[:-2]))
            for a in allowed
        )

    for word, args in dockerfile():
        if word == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert let_in(source), source


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_every_service_with_its_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {*SERVICES, "postgres", "redis", "migrate", "otel-collector", "prometheus"} <= set(
        services
    )
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["python", "-m", f"verdict_{name}"]
        assert service["environment"]["VERDICT_COMPONENT"] == name  # the health check's target
        assert service["read_only"] is True
    for name in ("assignment", "ingest", "analysis"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]


def test_compose_service_keys_match_the_identities_the_migration_stores(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    script = services["migrate"]["command"][-1]
    env = services["migrate"]["environment"]
    for name, role, variable in (
        ("svc-assignment", "ingest", "SVC_ASSIGNMENT_KEY"),
        ("svc-analysis", "analysis", "SVC_ANALYSIS_KEY"),
    ):
        assert f'VERDICT_KEY="$${variable}" verdict keys put --role {role} --name {name}' in script
        service = "assignment" if name == "svc-assignment" else "analysis"
        assert services[service]["environment"]["VERDICT_SERVICE_API_KEY"] == env[variable]


def test_prometheus_scrapes_each_service_on_its_metrics_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    for name in ("assignment", "ingest", "analysis"):
        port = compose["services"][name]["environment"][f"VERDICT_{name.upper()}_METRICS_PORT"]
        assert targets[f"verdict-{name}"] == f"{name}:{port}"
    mounted = " ".join(compose["services"]["prometheus"]["volumes"])
    for rule_file in config["rule_files"]:
        assert f":{rule_file}:" in mounted


def test_traces_go_to_the_collectors_otlp_receiver(compose: dict[str, Any]) -> None:
    collector = yaml.safe_load((DEPLOY / "otel-collector" / "config.yaml").read_text())
    endpoint = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    env = compose["services"]["assignment"]["environment"]
    assert env["VERDICT_TRACE_EXPORTER"] == "otlp"
    assert env["VERDICT_OTLP_ENDPOINT"] == "otel-collector:" + endpoint.rsplit(":", 1)[1]
    assert "otlp" in collector["service"]["pipelines"]["traces"]["receivers"]


def test_every_alert_uses_only_metrics_the_runbook_documents() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    runbook = (ROOT / "docs" / "OPERATIONS.md").read_text()
    for rule in rules["groups"][0]["rules"]:
        assert f"`{rule['alert']}`" in runbook, f"{rule['alert']} is not explained"
        for metric in re.findall(r"\b(verdict_[a-z_]+?)(?:_bucket|_count|_sum)?\b", rule["expr"]):
            assert f"`{metric}" in runbook, metric
