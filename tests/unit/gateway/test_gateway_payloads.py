"""How a variant's payload changes a LiteLLM call, and the once-a-minute warnings (pure)."""

from __future__ import annotations

import logging

import pytest

from verdict.integrations.litellm.payloads import Routed, apply_variants, attributes_of, unit_of
from verdict.integrations.throttled_log import ThrottledLog

CALL = {
    "model": "gpt-3.5-turbo",
    "temperature": 1.0,
    "messages": [{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}],
    "user": "u1",
    "metadata": {"verdict_attributes": {"plan": "pro"}, "trace": "t"},
}


def test_every_payload_key_is_a_parameter_but_the_prompt_keys() -> None:
    routed = [
        Routed(
            "exp",
            "v2",
            {
                "model": "gpt-4o",
                "temperature": 0.2,
                "prompt_version": "v2",
                "params": {"max_tokens": 64},
            },
        )
    ]
    call = apply_variants(CALL, "u1", routed, {"v2": "new system"})
    assert call["model"] == "gpt-4o" and call["temperature"] == 0.2 and call["max_tokens"] == 64
    assert "prompt_version" not in call and "params" not in call
    assert call["messages"] == [{"role": "system", "content": "new system"}, CALL["messages"][1]]
    assert call["metadata"] == {
        "verdict_attributes": {"plan": "pro"},
        "trace": "t",
        "verdict": {"unit_id": "u1", "experiment": "exp", "variant": "v2", "prompt_version": "v2"},
    }
    assert CALL["model"] == "gpt-3.5-turbo"  # the caller's dict is left alone


def test_a_system_prompt_is_inserted_when_the_call_has_none_and_later_experiments_win() -> None:
    routed = [
        Routed("a", "x", {"model": "m1", "system_prompt": "be brief"}),
        Routed("b", "y", {"model": "m2"}),
    ]
    call = apply_variants({"messages": [{"role": "user", "content": "hi"}]}, "u", routed)
    assert call["model"] == "m2"
    assert call["messages"][0] == {"role": "system", "content": "be brief"}
    assert call["metadata"]["verdict"]["experiment"] == "a,b"


def test_no_variant_changes_nothing_but_the_metadata() -> None:
    call = apply_variants(CALL, "u1", [])
    assert {k: v for k, v in call.items() if k != "metadata"} == {
        k: v for k, v in CALL.items() if k != "metadata"
    }


def test_the_unit_and_its_attributes() -> None:
    assert unit_of(CALL) == "u1"
    assert unit_of({"user": "u1", "metadata": {"verdict_unit_id": "u2"}}) == "u2"
    assert unit_of({"metadata": None}) is None and unit_of({"user": ""}) is None
    assert attributes_of(CALL) == {"plan": "pro"} and attributes_of({}) == {}


def test_throttled_log_says_each_thing_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = ThrottledLog(logging.getLogger("gw-test"), every_s=60, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="gw-test"):
        for _ in range(3):
            log.warning("down (%s)", "A")
        log.warning("another trouble")
        now[0] = 61.0
        log.warning("down (%s)", "B")
    assert [r.getMessage() for r in caplog.records] == ["down (A)", "another trouble", "down (B)"]
    assert log.suppressed == 2
