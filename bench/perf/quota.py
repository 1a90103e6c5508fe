"""`python -m bench.perf.quota`: how much of a Gemini quota visionq uses, and how it learns one.

Several worker processes (PostgreSQL by default) share one limiter (worker/ratelimit.py)
against the emulator enforcing the same quota. Scenarios, each on a fresh stack:

- ``rpm``: requests-bound, ``--sizes``' first value requests per ``--window-s`` window;
- ``rpm-large``: the same at the second size (how use scales with the quota);
- ``tpm``: input-tokens-bound, the second size's worth of calls' tokens per window (no rpm);
- ``usd`` (only with ``--spend``): spend-bound: the emulator's spend limit = the first
  size's worth of calls' actual cost per window, paced in dollars only (``"*": {"usd": ...}``);
- ``lower``: the emulator's real rpm is half the configured one for ``--lower-windows``
  windows, then raised to it (``POST /_emulator/faults``): 429s, learned factor over time.

Measured from the emulator's own books (``/_emulator/stats``), sampled every 0.5 s after a
warm-up window: achieved = the mean load of its sliding window over the quota (max = the
busiest sample); also ``admitted`` = what it admitted over the measured span (calls
answered, x prompt tokens per call for tpm, dollars billed for usd) over the quota of that
span. The load comes in bursts, one per window (the sliding log repeats the first
window's), and a span of a few windows cuts a burst at either end: ``admitted`` then reads
off by up to a burst, while the sampled mean is off by at most the margin's share. 429s
per call sent. Real
Gemini's windows are a minute; 30 s windows with the default 0.5 s margin give the same
kind of ceiling (30/30.5 = 0.984) in half the time. Results go to
``bench/results/quota.json`` and ``.md``. About 10 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console

from bench.perf.images import image_pool
from bench.perf.load import submit_in_background
from bench.perf.procstats import machine_is_busy, wait_until_quiet
from bench.perf.quota_report import markdown
from bench.perf.report import write
from bench.perf.stack import BenchStack
from visionq.vision.catalogue import load_catalogue

console = Console()
MODEL = load_catalogue().defaults["model"]
SAMPLE_S = 0.5
# Input tokens of one bench caption call before the first run measured them (the default
# model at HIGH media resolution, as tests/faults/test_gemini_faults.py counts them).
TOKENS_PER_CALL = 1150


@dataclass
class Scenario:
    """One run: what visionq is told, what the emulator enforces, what is measured."""

    name: str
    dimension: str  # rpm, tpm or usd: the quota that binds
    configured: dict[str, Any]  # VISIONQ_RATE_LIMITS entry
    entry: str  # its key: the model, or "*"
    real: dict[str, Any]  # emulator fault settings
    quota: float  # the real quota in the dimension, per window
    window_s: float
    windows: int
    calls_per_window: float
    raise_after: int | None = None  # windows before the real quota becomes the configured
    raised: dict[str, Any] = field(default_factory=dict)
    # A test run seen on the machine while measuring (it takes CPU: arrival jitter, 429s).
    pytest_seen: bool = False


@dataclass
class Sample:
    at: float
    requests: int
    tokens: int
    spend: float
    calls: int
    rejections: int
    factor: float | None
    answered: int = 0  # calls the emulator admitted and answered (cumulative)
    billed: float = 0.0  # their dollars (cumulative)


def _stats(stack: BenchStack) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{stack.emulator_url}/_emulator/stats", timeout=10).json()
    return stats


def _set_faults(stack: BenchStack, faults: dict[str, Any]) -> None:
    url = f"{stack.emulator_url}/_emulator/faults"
    httpx.post(url, json=faults, timeout=10).raise_for_status()


def _sample(stack: BenchStack, client: redis.Redis, scenario: Scenario) -> Sample:
    stats = _stats(stack)
    window = stats.get("window_by_model", {}).get(MODEL, {})
    raw = client.hget(f"visionq:rl:{{{scenario.entry}}}:scale", scenario.dimension)
    rejections = stats["quota_rejections"] + stats.get("spend_rejections", 0)
    return Sample(
        at=time.monotonic(),
        requests=int(window.get("requests_in_window", 0)),
        tokens=int(window.get("tokens_in_window", 0)),
        spend=float(stats.get("spend_usd_in_window") or 0.0),
        calls=int(stats["generate_calls"]),
        rejections=int(rejections),
        factor=float(raw) if raw else None,  # type: ignore[arg-type]
        answered=int(stats.get("answered_ok", 0)),
        billed=float(sum((stats.get("billed_usd_by_tier") or {}).values())),
    )


def _load(sample: Sample, dimension: str) -> float:
    return {"rpm": sample.requests, "tpm": sample.tokens, "usd": sample.spend}[dimension]


def _admitted(samples: list[Sample], dimension: str, quota: float, window_s: float) -> float | None:
    """What the emulator admitted between the first and last sample over the quota of
    that span (tokens: calls answered x the sliding window's tokens per request)."""
    if len(samples) < 2:
        return None
    first, last = samples[0], samples[-1]
    span = last.at - first.at
    if span <= 0:
        return None
    calls = last.answered - first.answered
    if dimension == "rpm":
        amount = float(calls)
    elif dimension == "usd":
        amount = last.billed - first.billed
    else:
        per_call = [s.tokens / s.requests for s in samples if s.requests]
        amount = calls * statistics.fmean(per_call) if per_call else 0.0
    return round(amount / (quota * span / window_s), 4)


def run_scenario(args: argparse.Namespace, scenario: Scenario) -> tuple[dict[str, Any], Sample]:
    """Run one scenario on a fresh stack; its figures and its last sample."""
    stack = BenchStack(
        latency_ms=args.latency_ms, database=args.database, label=f"quota-{scenario.name}-"
    )
    try:
        console.print(f"[bold]{scenario.name}[/]: starting the stack ({args.database})")
        stack.start()
        window = scenario.window_s
        _set_faults(stack, {**scenario.real, "quota_window_s": window, "spend_window_s": window})
        env = {
            "VISIONQ_RATE_LIMITS": json.dumps({scenario.entry: scenario.configured}),
            "VISIONQ_RATE_WINDOW_S": f"{window:g}",
            "VISIONQ_RATE_MARGIN_S": f"{args.margin_s:g}",
            "VISIONQ_MAX_ATTEMPTS": "20",
        }
        for index in range(args.workers):
            stack.builder.start_worker(name=f"worker{index}", concurrency=args.concurrency, env=env)
        images = image_pool(4, seed=3, sides=(320, 480))
        total = scenario.windows + 2 + (scenario.raise_after or 0)
        jobs = math.ceil(scenario.calls_per_window * 1.3 * total) + 50
        key = stack.new_key(f"quota-{scenario.name}")
        submit_in_background(stack.api_url, key, images, jobs=jobs, threads=8)
        samples = _measure(stack, scenario)
        return _figures(scenario, samples, args.margin_s), samples[-1]
    finally:
        stack.stop()


def _measure(stack: BenchStack, scenario: Scenario) -> list[Sample]:
    """Samples from the first answered call to the end of the scenario's windows."""
    client = redis.Redis.from_url(stack.env["VISIONQ_REDIS_URL"])
    window = scenario.window_s
    try:
        deadline = time.monotonic() + 120
        while _stats(stack)["answered_ok"] == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("no call answered in 120 s: is a worker running?")
            time.sleep(0.2)
        started = time.monotonic()
        raise_at = (
            None if scenario.raise_after is None else started + window * (1 + scenario.raise_after)
        )
        end = started + window * (1 + scenario.windows + (scenario.raise_after or 0))
        samples: list[Sample] = []
        while time.monotonic() < end:
            if len(samples) % 20 == 0 and machine_is_busy():
                scenario.pytest_seen = True
            if raise_at is not None and time.monotonic() >= raise_at:
                _set_faults(stack, scenario.raised)
                console.print(f"  real quota raised to {scenario.raised}")
                raise_at = None
            samples.append(_sample(stack, client, scenario))
            time.sleep(SAMPLE_S)
        return [s for s in samples if s.at >= started + window]  # after one warm-up window
    finally:
        client.close()


def _figures(scenario: Scenario, samples: list[Sample], margin_s: float) -> dict[str, Any]:
    loads = [_load(s, scenario.dimension) / scenario.quota for s in samples]
    achieved = _admitted(samples, scenario.dimension, scenario.quota, scenario.window_s)
    calls = samples[-1].calls - samples[0].calls
    rejected = samples[-1].rejections - samples[0].rejections
    factors = [s.factor for s in samples if s.factor is not None]
    figures: dict[str, Any] = {
        "scenario": scenario.name,
        "dimension": scenario.dimension,
        "configured": scenario.configured,
        "real": scenario.real,
        "quota_per_window": scenario.quota,
        "window_s": scenario.window_s,
        "ceiling": round(scenario.window_s / (scenario.window_s + margin_s), 4),
        "achieved": achieved,
        "achieved_mean": round(statistics.fmean(loads), 4) if loads else None,
        "achieved_max": round(max(loads), 4) if loads else None,
        "calls": calls,
        # The raw figures behind "achieved": answered calls over the measured span.
        "answered": samples[-1].answered - samples[0].answered,
        "span_s": round(samples[-1].at - samples[0].at, 1),
        "rejected_429": rejected,
        # Warm-up window included (a fresh emulator: its counters start at 0).
        "rejected_429_total": samples[-1].rejections,
        "rate_429": round(rejected / calls, 5) if calls else None,
        "factor_min": min(factors) if factors else None,
        "factor_last": factors[-1] if factors else None,
        "pytest_seen": scenario.pytest_seen,
    }
    if scenario.raise_after is not None:
        # Before the raise: use of the real (lower) quota; after: of the configured one.
        cut = samples[0].at + scenario.window_s * scenario.raise_after
        before = [s for s in samples if s.at < cut]
        low = [_load(s, "rpm") / scenario.quota for s in before]
        high = [_load(s, "rpm") / scenario.raised["rpm"] for s in samples if s.at >= cut]
        figures["achieved_of_real_before_raise"] = round(statistics.fmean(low), 4) if low else None
        # The table's columns: the use of the real quota, before the raise.
        figures["achieved"] = _admitted(before, "rpm", scenario.quota, scenario.window_s)
        figures["achieved_mean"] = figures["achieved_of_real_before_raise"]
        figures["achieved_max"] = round(max(low), 4) if low else None
        figures["achieved_of_raised_last_window"] = (
            round(statistics.fmean(high[-int(scenario.window_s / SAMPLE_S) :]), 4) if high else None
        )
        figures["factor_trace"] = [
            (round(s.at - samples[0].at, 1), s.factor) for s in samples[:: int(1 / SAMPLE_S) * 2]
        ]
    console.print(
        f"  {scenario.name}: achieved {figures['achieved_mean']} of the quota "
        f"(admitted {figures['achieved']}), "
        f"{rejected} 429s for {calls} calls, factor {figures['factor_last']}"
    )
    return figures


def scenarios(args: argparse.Namespace, per_call: dict[str, float]) -> list[Scenario]:
    """The runs after the first (rpm), sized with what it measured per call."""
    small, large = args.sizes[0], args.sizes[-1]
    window = args.window_s
    # The same binding quota at the second size: how use scales with the quota.
    found = [Scenario("rpm-large", "rpm", {"rpm": large}, MODEL, {"rpm": large}, large, window,
                      args.windows, large)]  # fmt: skip
    tokens = per_call.get("tokens", TOKENS_PER_CALL)
    tpm = int(large * tokens)
    found.append(
        Scenario("tpm", "tpm", {"tpm": tpm}, MODEL, {"tpm": tpm}, tpm, window, args.windows, large)
    )
    cost = per_call.get("usd")
    if args.spend and cost:
        usd = round(small * cost, 6)
        found.append(
            Scenario(
                "usd",
                "usd",
                {"usd": usd, "window_s": window},
                "*",
                {"spend_limit_usd": usd},
                usd,
                window,
                args.windows,
                small,
            )
        )
    lower = args.lower_window_s
    found.append(
        Scenario(
            "lower",
            "rpm",
            {"rpm": small},
            MODEL,
            {"rpm": small // 2},
            small // 2,
            lower,
            args.lower_windows,
            small,
            raise_after=args.lower_windows,
            raised={"rpm": small},
        )
    )
    return found


def _per_call(stack_stats: Sample | None, run: dict[str, Any]) -> dict[str, float]:
    """Mean prompt tokens and cost of one call, from the rpm run's last window."""
    if stack_stats is None or not stack_stats.requests:
        return {}
    per_call = {"tokens": stack_stats.tokens / stack_stats.requests}
    if stack_stats.spend:
        per_call["usd"] = stack_stats.spend / stack_stats.requests
    return per_call


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf.quota",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        # >= 1,000 calls a run: one 429 is <= 0.1% (the target).
        default="400,1000",
        help="calls per window: rpm run, rpm-large and tpm runs (spend, lower: the first)",
    )
    # Gemini's windows are a minute; 30 s keeps the margin's ceiling near it in half the time.
    parser.add_argument("--window-s", type=float, default=30.0)
    parser.add_argument("--margin-s", type=float, default=0.5)
    parser.add_argument("--windows", type=int, default=3, help="measured windows per run")
    parser.add_argument("--lower-window-s", type=float, default=20.0)
    parser.add_argument(
        "--lower-windows",
        type=int,
        default=3,
        help="windows at half the real quota, then as many raised",
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    # Off by default: five runs would pass 12 minutes (rpm, rpm-large, tpm, lower ~10).
    parser.add_argument("--spend", action="store_true", help="also the dollars-bound run")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="do not wait for running pytest processes to end first",
    )
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if args.wait:
        wait_until_quiet(say=console.print)
    small = args.sizes[0]
    first = Scenario(
        "rpm",
        "rpm",
        {"rpm": small},
        MODEL,
        {"rpm": small},
        small,
        args.window_s,
        args.windows,
        small,
    )
    runs = []
    figures, last = run_scenario(args, first)
    runs.append(figures)
    for scenario in scenarios(args, _per_call(last, figures)):
        runs.append(run_scenario(args, scenario)[0])
    results = {
        "workers": args.workers,
        "concurrency": args.concurrency,
        "database": args.database,
        "latency_ms": args.latency_ms,
        "margin_s": args.margin_s,
        "model": MODEL,
        "runs": runs,
    }
    path = write(args.out, "quota", results, markdown(results))
    console.print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
