"""The rate limiter's moving window, on a clock the test moves (no server, no sleeping)."""

from __future__ import annotations

import pytest

from engine.faces.api import guards
from engine.faces.api.guards import RateLimiter
from engine.faces.api.problems import ApiProblem


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    moved = _Clock()
    monkeypatch.setattr(guards.time, "monotonic", moved.monotonic)
    return moved


def test_a_caller_over_the_limit_waits_until_its_oldest_request_leaves_the_window(
    clock: _Clock,
) -> None:
    limiter = RateLimiter("3/minute")
    for _ in range(3):
        limiter.hit("key", "k1")
        clock.now += 10
    with pytest.raises(ApiProblem) as refused:
        limiter.hit("key", "k1")
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "30"  # the first left at 1060, now is 1030
    limiter.hit("key", "k2")  # another caller has its own window
    limiter.hit("address", "k1")  # and so has an address that happens to read the same
    clock.now = 1060.5  # the first request has left the window: one more fits, not two
    limiter.hit("key", "k1")
    with pytest.raises(ApiProblem):
        limiter.hit("key", "k1")


def test_callers_silent_for_a_whole_window_are_forgotten(clock: _Clock) -> None:
    limiter = RateLimiter("2/second")
    for who in ("a", "b", "c"):
        limiter.hit("address", who)
    clock.now += 5
    limiter.hit("address", "d")
    assert set(limiter._hits) == {("address", "d")}
