"""``ballast operator`` flags of the SLO reader, exported as the variables it reads."""

from __future__ import annotations

import argparse
import os

from ballast.controller import slo_settings as s
from ballast.telemetry.slo_queries import format_duration, parse_duration


def _window(text: str) -> str:
    try:
        return format_duration(parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from exc
    if not 1 <= value <= 86_400:
        raise argparse.ArgumentTypeError("the interval is 1 to 86400 seconds")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the SLO flags (docs/slo.md)."""
    g = parser.add_argument_group("SLO and cost reporting (docs/slo.md)")
    g.add_argument(
        "--prometheus-url",
        default=os.environ.get(s.ENV_PROMETHEUS_URL) or None,
        help=(
            "Prometheus to read classes' SLO signals and GPU use from, e.g. "
            "http://prometheus.monitoring:9090 (default: $BALLAST_PROMETHEUS_URL; unset: no "
            "reading, SLOMet=Unknown with reason PrometheusNotConfigured)"
        ),
    )
    g.add_argument(
        "--slo-interval",
        type=_interval,
        default=_interval(os.environ.get(s.ENV_SLO_INTERVAL) or str(s.DEFAULT_INTERVAL_SECONDS)),
        metavar="SECONDS",
        help="how often each class is read (default: 30)",
    )
    g.add_argument(
        "--slo-window",
        type=_window,
        default=_window(os.environ.get(s.ENV_SLO_WINDOW) or s.DEFAULT_WINDOW),
        help="the range every signal and the cost are read over, e.g. 5m, 1h (default: 1h)",
    )
    g.add_argument(
        "--slo-rules-namespace",
        default=os.environ.get(s.ENV_RULES_NAMESPACE) or None,
        help=(
            "namespace of the ballast-slo-rules ConfigMap and the PrometheusRules "
            "(default: --webhook-namespace, the operator's namespace)"
        ),
    )


def export(args: argparse.Namespace) -> None:
    """Put the parsed flags where the handlers read them."""
    if args.prometheus_url:
        os.environ[s.ENV_PROMETHEUS_URL] = args.prometheus_url
    else:
        os.environ.pop(s.ENV_PROMETHEUS_URL, None)
    os.environ[s.ENV_SLO_INTERVAL] = f"{args.slo_interval:g}"
    os.environ[s.ENV_SLO_WINDOW] = args.slo_window
    namespace = args.slo_rules_namespace or getattr(args, "webhook_namespace", None)
    if namespace:
        os.environ[s.ENV_RULES_NAMESPACE] = namespace
