"""The few PromQL shapes the dashboards repeat, so that each query reads as what it
asks and not as brackets."""

from __future__ import annotations

# Grafana's own: at least four scrape intervals, so a rate never spans a lone sample.
RATE_WINDOW = "$__rate_interval"
# The dashboard's whole time range: "how many in the range shown".
RANGE = "$__range"


def series(metric: str, selector: str = "") -> str:
    """``metric{selector}``, or the bare name without one."""
    return f"{metric}{{{selector}}}" if selector else metric


def summed(expr: str, by: str = "") -> str:
    return f"sum by ({by}) ({expr})" if by else f"sum({expr})"


def rate(metric: str, selector: str = "", by: str = "") -> str:
    """Per second over the rate window, summed (by ``by``)."""
    return summed(f"rate({series(metric, selector)}[{RATE_WINDOW}])", by)


def increase(metric: str, selector: str = "", by: str = "", window: str = RANGE) -> str:
    """How many in ``window`` (by default the dashboard's range), summed (by ``by``)."""
    return summed(f"increase({series(metric, selector)}[{window}])", by)


def or_zero(expr: str) -> str:
    """0 rather than no data where nothing matched (a counter that never counted)."""
    return f"{expr} or vector(0)"


def quantile(q: float, histogram: str, selector: str = "", by: str = "") -> str:
    """The ``q`` quantile of a Prometheus histogram over the rate window."""
    by_le = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', selector, by_le)})"


def mean(histogram: str, selector: str = "") -> str:
    """A histogram's mean over the rate window."""
    return f"{rate(histogram + '_sum', selector)} / {rate(histogram + '_count', selector)}"


def loss(selector: str, window: str = RATE_WINDOW) -> str:
    """Loss per check from the raw probe counters, as the recording rule computes it:
    (sent - received) / sent, so that exactly 1 % stays 0.01."""
    by = "agent, check, target"
    sent = increase("slawatch_probe_packets_sent_total", selector, by, window)
    received = increase("slawatch_probe_packets_received_total", selector, by, window)
    return f"({sent} - {received}) / ({sent} > 0)"


def one_hot(metric: str, selector: str, label: str, values: dict[str, int], by: str) -> str:
    """A kube-state-metrics style family (1 on the current value of ``label``, 0 on
    the others) as one series per ``by`` whose value is the current value's number."""
    sep = ", " if selector else ""
    parts = [f'{metric}{{{selector}{sep}{label}="{v}"}} * {n}' for v, n in values.items()]
    return f"max by ({by}) (\n  " + "\n  or ".join(parts) + "\n)"
