"""The Prometheus client against a scripted HTTP server: good answers parse, bad ones are problems."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from ballast.telemetry.prometheus import Prometheus, label_set

# path -> (status, body); a body that is a str is sent as is (not JSON-encoded).
Answers = dict[str, tuple[int, Any]]


class _Server:
    def __init__(self) -> None:
        self.answers: Answers = {}
        self.seen: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                outer.seen.append(parse_qs(parsed.query))
                status, body = outer.answers.get(parsed.path, (404, "not found"))
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": m, "value": [1700000000.0, v]} for m, v in samples]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_instant_query_gives_a_float_per_label_set(server: _Server) -> None:
    server.answers["/api/v1/query"] = (
        200,
        _vector(({"gpu": "0", "Hostname": "n1"}, "37.5"), ({"gpu": "1", "Hostname": "n1"}, "NaN")),
    )
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with Prometheus(server.url) as prom:
        got = prom.query("DCGM_FI_DEV_GPU_UTIL", at=at)
    assert got.ok and got.query == "DCGM_FI_DEV_GPU_UTIL"
    assert got.values[label_set({"Hostname": "n1", "gpu": "0"})] == 37.5
    assert math.isnan(got.values[label_set({"Hostname": "n1", "gpu": "1"})])
    assert server.seen[-1]["query"] == ["DCGM_FI_DEV_GPU_UTIL"]
    assert float(server.seen[-1]["time"][0]) == at.timestamp()


def test_scalar_answer_has_the_empty_label_set(server: _Server) -> None:
    server.answers["/api/v1/query"] = (
        200,
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "4"]}},
    )
    got = Prometheus(server.url).query("2 + 2")
    assert got.ok and got.values == {(): 4.0} and got.scalar() == 4.0


@pytest.mark.parametrize(
    ("answer", "want"),
    [
        (
            (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}),
            "HTTP Status Code 400",
        ),
        ((503, "overloaded"), "HTTP Status Code 503"),
        ((200, "<html>not the API</html>"), "unreadable answer"),
        ((200, {"status": "success", "data": {}}), "unreadable answer"),
    ],
    ids=["promql-error", "server-error", "not-json", "no-result"],
)
def test_a_bad_answer_is_a_problem_not_an_exception(
    server: _Server, answer: tuple[int, Any], want: str
) -> None:
    server.answers["/api/v1/query"] = answer
    got = Prometheus(server.url).query("up{")
    assert not got.ok and got.values == {}
    assert want in got.problems[0]


def test_an_unreadable_sample_is_reported_and_the_rest_kept(server: _Server) -> None:
    server.answers["/api/v1/query"] = (
        200,
        _vector(({"gpu": "0"}, "1"), ({"gpu": "1"}, "not-a-number")),
    )
    got = Prometheus(server.url).query("x")
    assert got.values == {(("gpu", "0"),): 1.0}
    assert len(got.problems) == 1 and "not-a-number" in got.problems[0]


def test_unreachable_server_is_a_problem() -> None:
    prom = Prometheus("http://127.0.0.1:9", timeout_s=2)  # discard port: nothing listens
    got = prom.query("up")
    assert not got.ok and "cannot reach" in got.problems[0]
    assert not prom.ready()
    assert prom.targets().problems


def test_range_query(server: _Server) -> None:
    server.answers["/api/v1/query_range"] = (
        200,
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {"tier": "Interactive"}, "values": [[10, "1"], [12, "3"]]}],
            },
        },
    )
    end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    got = Prometheus(server.url).query_range("q", end - dt.timedelta(minutes=1), end, 2)
    assert got.ok and got.series == {(("tier", "Interactive"),): [(10.0, 1.0), (12.0, 3.0)]}
    assert server.seen[-1]["step"] == ["2"]
    bad = Prometheus(server.url).query_range("q", end, end - dt.timedelta(minutes=1), 2)
    assert not bad.ok and "bad range" in bad.problems[0]


def test_targets_health(server: _Server) -> None:
    def target(job: str, health: str, error: str = "") -> dict[str, Any]:
        return {
            "labels": {"job": job, "instance": "127.0.0.1:1"},
            "scrapePool": job,
            "scrapeUrl": "http://127.0.0.1:1/metrics",
            "health": health,
            "lastError": error,
        }

    server.answers["/api/v1/targets"] = (
        200,
        {
            "status": "success",
            "data": {
                "activeTargets": [
                    target("ballast-scheduler", "up"),
                    target("ballast-agent", "down", "connection refused"),
                    {"broken": True},
                ],
                "droppedTargets": [],
            },
        },
    )
    got = Prometheus(server.url).targets()
    assert got.jobs() == {"ballast-scheduler", "ballast-agent"}
    assert [(t.job, t.last_error) for t in got.down()] == [("ballast-agent", "connection refused")]
    assert len(got.problems) == 1 and "unreadable target" in got.problems[0]
    assert server.seen[-1]["state"] == ["active"]
