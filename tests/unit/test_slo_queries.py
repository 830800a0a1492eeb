"""PromQL builders for class service levels, and the reader that sorts the answers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from ballast.telemetry.prometheus import QueryResult
from ballast.telemetry.slo_queries import (
    Signals,
    format_duration,
    gpu_hours_step,
    le_regex,
    parse_duration,
    quote,
)
from ballast.telemetry.slo_reader import read

AT = dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("1h", 3600), ("3d", 259_200)]
)
def test_durations_round_trip(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", ["", "1h30m", "0s", "-5m", "5 minutes", "1.5h"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("bound", "matches", "misses"),
    [
        (1.0, ["1", "1.0", "1.00"], ["10", "0.1", "1.5", "11.0"]),
        (0.5, ["0.5", "0.50"], ["0.05", "5", "0.55"]),
        (30.0, ["30", "30.0"], ["3", "300", "300.0"]),
        (0.25, ["0.25"], ["0.255", "0.2"]),
    ],
)
def test_bucket_bound_regex_matches_every_spelling(
    bound: float, matches: list[str], misses: list[str]
) -> None:
    # The PromQL string literal unescapes \\ to \, then Prometheus anchors the regex.
    pattern = re.compile("^(?:" + le_regex(bound).replace("\\\\", "\\") + ")$")
    assert all(pattern.match(m) for m in matches)
    assert not any(pattern.match(m) for m in misses)


def test_quote_escapes() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


def test_default_selection_joins_the_class_pods_over_the_window() -> None:
    q = Signals.of("chat").latency_quantile(0.99, "1h")
    assert q.startswith("histogram_quantile(0.99, sum by (le) (")
    assert "rate(vllm:e2e_request_latency_seconds_bucket[1h])" in q
    assert 'max_over_time(ballast_scheduler_pod_info{class="chat"}[1h])' in q
    assert "on (namespace, pod) group_left ()" in q


def test_match_labels_and_overrides_replace_the_join() -> None:
    s = Signals.of(
        "rag",
        latency_histogram="tgi_request_duration",
        success_counter="tgi_request_success",
        match_labels={"service": 'r"ag', "env": "prod"},
    )
    q = s.latency_quantile(0.95, "30m")
    assert 'rate(tgi_request_duration_bucket{env="prod", service="r\\"ag"}[30m])' in q
    assert "pod_info" not in q
    assert "increase(tgi_request_success{" in s.successes("30m")
    assert "increase(tgi_request_duration_count{" in s.requests("30m")


def test_queue_wait_and_gpu_hours_read_the_scheduler_by_class() -> None:
    s = Signals.of("batch")
    assert 'ballast_scheduler_pod_scheduling_seconds_bucket{class="batch"}[1h]' in (
        s.queue_wait_quantile(0.95, "1h")
    )
    g = s.gpu_hours_by_model("1h", 30)
    assert 'ballast_scheduler_pod_gpus{class="batch"}' in g and "[1h:30s]" in g
    assert g.endswith("* 30 / 3600")
    assert gpu_hours_step(3600) == 30 and gpu_hours_step(60) == 1


class StubProm:
    """Answers by the first registered fragment found in the query."""

    def __init__(self, answers: dict[str, QueryResult]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def query(self, promql: str, at: dt.datetime | None = None) -> QueryResult:
        self.asked.append(promql)
        for fragment, result in self.answers.items():
            if fragment in promql:
                return result
        return QueryResult(promql)  # empty: no data


def value(v: float, **labels: str) -> QueryResult:
    return QueryResult("q", {tuple(sorted(labels.items())): v})


def test_reader_sorts_answers() -> None:
    prom: Any = StubProm(
        {
            "histogram_quantile(0.95, sum by (le) (rate(ballast_scheduler": value(3.0),
            "histogram_quantile(0.95": value(0.4),
            "histogram_quantile(0.99": value(float("nan")),  # no requests: 0/0
            "increase(vllm:e2e_request_latency_seconds_count": value(100.0),
            "ballast_scheduler_is_leader": value(1.0),
            "ballast_scheduler_pod_gpus": QueryResult(
                "q", {(("model", "NVIDIA-L4"),): 0.5, (("model", "NVIDIA-H100"),): 1.5}
            ),
        }
    )
    got = read(prom, Signals.of("chat"), window="1h", window_s=3600, at=AT)
    assert got.latency_p95_s == 0.4
    assert got.latency_p99_s is None
    assert got.queue_wait_p95_s == 3.0
    assert got.requests == 100.0
    assert got.successes is None  # no series for the counter
    assert got.gpu_hours_by_model == {"NVIDIA-L4": 0.5, "NVIDIA-H100": 1.5}
    assert got.unreachable is None


def test_reader_without_scheduler_series_knows_nothing_of_gpus() -> None:
    got = read(StubProm({}), Signals.of("chat"), window="1h", window_s=3600, at=AT)  # type: ignore[arg-type]
    assert got.gpu_hours_by_model is None


def test_reader_stops_at_an_unreachable_server() -> None:
    down = QueryResult("q", problems=("query: cannot reach http://127.0.0.1:1: ConnectionError",))
    prom = StubProm({"": down})
    got = read(prom, Signals.of("chat"), window="1h", window_s=3600, at=AT)  # type: ignore[arg-type]
    assert got.unreachable and "cannot reach" in got.unreachable
    assert len(prom.asked) == 1


def test_reader_skips_quantiles_nobody_asked_for() -> None:
    prom = StubProm({})
    read(prom, Signals.of("c"), window="5m", window_s=300, at=AT, latency=False, queue_wait=False)  # type: ignore[arg-type]
    assert not any("histogram_quantile" in q for q in prom.asked)


def test_unreachable_message_is_stable_across_tries() -> None:
    def down(addr: str) -> QueryResult:
        return QueryResult("q", problems=(
            "query: cannot reach http://127.0.0.1:9090: ConnectionError: HTTPConnectionPool("
            f"host='127.0.0.1', port=9090): Max retries exceeded (<object at {addr}>)",))  # fmt: skip

    a = read(StubProm({"": down("0x1")}), Signals.of("c"), window="1m", window_s=60, at=AT)  # type: ignore[arg-type]
    b = read(StubProm({"": down("0x2")}), Signals.of("c"), window="1m", window_s=60, at=AT)  # type: ignore[arg-type]
    assert (
        a.unreachable
        == b.unreachable
        == ("query: cannot reach http://127.0.0.1:9090: ConnectionError")
    )


def test_breaker_stops_asking_a_dead_server_for_a_while() -> None:
    from ballast.telemetry.slo_reader import Breaker, Observation

    asked: list[float] = []

    def ask_down() -> Observation:
        asked.append(1)
        return Observation("1h", unreachable="query: cannot reach http://p: ReadTimeout")

    breaker = Breaker(hold_s=10)
    first = breaker.read(100.0, ask_down, "1h")
    held = breaker.read(105.0, ask_down, "1h")
    assert first.unreachable == held.unreachable and len(asked) == 1
    again = breaker.read(110.5, lambda: Observation("1h", requests=3.0), "1h")
    assert again.requests == 3.0 and not again.unreachable
