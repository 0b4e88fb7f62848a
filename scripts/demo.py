"""`make demo`: Verdict deciding an LLM prompt experiment by itself, in under three minutes.

1. Starts the suite (`verdict up`, embedded PostgreSQL and Redis unless URLs are configured)
   with the analysis scheduler every `VERDICT_ANALYSIS_INTERVAL` seconds (2 here; the suite is
   left running).
2. Creates the LLM metric catalog and, per scenario, an experiment "prompt v2 vs v1".
3. Simulates users chatting through LiteLLM mock calls routed by Verdict's SDK helper, with a
   known truth, until the analysis service's stopping rules stop the experiment.
4. Prints what Verdict decided next to the truth, then the console URL when a console runs.

Scenario 1: v2 lifts thumbs-up from 30 % to 40 % per response (+33 % relative), same latency:
the efficacy rule ships v2. Scenario 2: same thumbs-up, v2 twice as slow: the p95 latency
guardrail rolls back.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: the packaged cost map

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from demo_scenario import Endpoints, Outcome, Scenario, Simulation, Truth, run_scenario  # noqa: E402

from verdict.channels import bearer, sync_channel  # noqa: E402
from verdict.integrations.llm_metrics import ensure_llm_metrics  # noqa: E402
from verdict.v1 import common_pb2, experiment_pb2  # noqa: E402
from verdict_platform.settings import load_settings  # noqa: E402

ANALYSIS_INTERVAL_S = "2"
VERDICT = str(Path(sys.executable).parent / "verdict")

SCENARIOS = (
    Scenario(
        "1. v2 is better (thumbs-up 30 % -> 40 %), latency unchanged",
        v1=Truth(thumbs_up=0.30, delay_s=0.02),
        v2=Truth(thumbs_up=0.40, delay_s=0.02),
        expected="ship",
    ),
    Scenario(
        "2. v2 is as liked but its model answers twice as slowly (50 ms -> 100 ms)",
        v1=Truth(thumbs_up=0.30, delay_s=0.05),
        v2=Truth(thumbs_up=0.30, delay_s=0.10),
        expected="rollback",
    ),
)


def bar(done: float, width: int = 30) -> str:
    """A text progress bar for a fraction in [0, 1]."""
    filled = round(max(0.0, min(1.0, done)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _progress(scenario: Scenario, started: float):  # type: ignore[no-untyped-def]
    def show(sim: Simulation, status: int) -> None:
        state = experiment_pb2.ExperimentStatus.Name(status).removeprefix("EXPERIMENT_STATUS_")
        line = (
            f"\r  {bar(sim.users / scenario.max_users)} {sim.users:>5} users, {sim.calls:>6} "
            f"LLM calls, {time.monotonic() - started:5.1f} s, experiment {state.lower():<8}"
        )
        print(line, end="", flush=True)

    return show


def _up() -> tuple[bool, str]:
    """Runs `verdict up` (analysis every 2 s); returns whether analysis was already running
    (its interval is then whatever it started with) and `up`'s output."""
    before = subprocess.run([VERDICT, "status"], capture_output=True, text=True).stdout
    running = bool(re.search(r"^analysis\s+running", before, re.M))
    env = {**os.environ, "VERDICT_ANALYSIS_INTERVAL": ANALYSIS_INTERVAL_S}
    up = subprocess.run([VERDICT, "up"], capture_output=True, text=True, env=env)
    if up.returncode != 0:
        print(up.stdout + up.stderr, file=sys.stderr)
        raise SystemExit("verdict up failed")
    return running, up.stdout


def _report(scenario: Scenario, outcome: Outcome) -> None:
    decision = common_pb2.Decision.Name(outcome.decision).removeprefix("DECISION_").lower()
    rule = experiment_pb2.StoppingRule.Name(outcome.rule).removeprefix("STOPPING_RULE_").lower()
    truth = scenario.v2.thumbs_up / scenario.v1.thumbs_up - 1
    print()
    if outcome.status != experiment_pb2.EXPERIMENT_STATUS_STOPPED:
        print(f"  no decision within the budget ({outcome.users_simulated} users)")
        return
    print(f"  decision          {decision} (rule: {rule}; expected: {scenario.expected})")
    if scenario.expected == "ship":
        print(
            f"  true effect       thumbs-up per response {truth:+.1%} relative "
            f"({scenario.v1.thumbs_up:.0%} -> {scenario.v2.thumbs_up:.0%})"
        )
    else:
        slower = scenario.v2.delay_s / scenario.v1.delay_s - 1
        print(
            f"  true effect       the model answers {slower:+.0%} slower (typical "
            f"{scenario.v1.delay_s * 1000:.0f} -> {scenario.v2.delay_s * 1000:.0f} ms, before the "
            "gateway's own time); thumbs-up unchanged"
        )
    if outcome.relative_effect is not None and outcome.interval is not None:
        low, high = outcome.interval
        values = ", ".join(f"{k} {v:.4g}" for k, v in sorted(outcome.variant_values.items()))
        print(
            f"  estimated         {outcome.metric}: {outcome.relative_effect:+.1%} relative; "
            f"sequential interval [{low:+.1%}, {high:+.1%}]; per variant: {values}"
        )
    print(f"  time to decision  {outcome.seconds_to_decision:.1f} s after the start")
    print(
        f"  users needed      {outcome.users_at_decision} in the analysis that decided "
        f"({outcome.users_simulated} simulated, {outcome.calls} LLM calls)"
    )
    print(f"  why               {outcome.reason[:300]}")


def main() -> int:
    began = time.monotonic()
    print("Verdict demo: an LLM prompt experiment decided by itself\n")
    print("Starting the suite (verdict up) ...", flush=True)
    was_running, _ = _up()
    settings = load_settings()
    key = (settings.data_dir.resolve() / "dev-admin-key").read_text().strip()
    host = settings.host
    endpoints = Endpoints(
        assignment=f"{host}:{settings.assignment_port}",
        ingest=f"{host}:{settings.ingest_port}",
        analysis=f"{host}:{settings.analysis_port}",
        admin_key=key,
        run_analysis=was_running,
    )
    if was_running:
        print(
            "  (analysis was already running with its own interval: the demo asks for an "
            "analysis after each wave; the stopping rules still decide)"
        )
    with sync_channel(endpoints.assignment) as channel:
        catalog = ensure_llm_metrics(channel, bearer(key))
    print(f"LLM metric catalog: {len(catalog.created)} created, {len(catalog.existing)} existing")
    outcomes = []
    for scenario in SCENARIOS:
        print(f"\nScenario {scenario.title}")
        started = time.monotonic()
        outcome = asyncio.run(run_scenario(endpoints, scenario, _progress(scenario, started)))
        _report(scenario, outcome)
        outcomes.append((scenario, outcome))
    print(
        f"\nDone in {time.monotonic() - began:.0f} s. The suite keeps running (`make down` "
        "stops it)."
    )
    status = subprocess.run([VERDICT, "status"], capture_output=True, text=True).stdout
    console = re.search(r"^dashboard\s+running.*port (\d+)", status, re.M)
    if console:
        print(f"Console: http://{host}:{console.group(1)}")
    for scenario, outcome in outcomes:
        print(f"  experiment {outcome.key}: {scenario.title.split('.', 1)[1].strip()}")
    ok = all(common_pb2.Decision.Name(o.decision).endswith(s.expected.upper()) for s, o in outcomes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
