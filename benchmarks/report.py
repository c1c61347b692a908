"""``benchmarks.run``'s report: the targets a run met, and its Markdown tables."""

from __future__ import annotations

from typing import Any

from benchmarks.serving import BARE, BARE_QUIET, BATCH, BATCH_SIZE, SERVICE


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, figure, met) for each target the run has a figure for."""
    met = []
    ratios = results.get("ratios", {})
    if bare := ratios.get(f"{SERVICE} / {BARE}"):
        for label, key, bound, at_least in (
            ("/predict req/s >= 0.9x bare FastAPI", "rps", 0.9, True),
            ("/predict p99 <= 1.2x bare FastAPI", "p99", 1.2, False),
            ("stretch: /predict req/s >= 1.0x bare FastAPI", "rps", 1.0, True),
        ):
            value = bare[key]
            ok = value >= bound if at_least else value <= bound
            met.append((label, f"{value:.2f}x", ok))
    if quiet := ratios.get(f"{SERVICE} / {BARE_QUIET}"):
        value = quiet["rps"]
        met.append(
            (
                "stretch: req/s >= 0.8x bare, no access log",
                f"{value:.2f}x",
                value >= 0.8,
            )
        )
    if render := results.get("render"):
        value = render["ratio"]
        met.append(("render <= 1.5x trivial template", f"{value:.2f}x", value <= 1.5))
    if cold := results.get("cold_start"):
        value = cold["median_s"]
        met.append(("cold start < 1.5 s", f"{value:.2f} s", value < 1.5))
    if tests := results.get("tests"):
        value = tests["wall_s"]
        met.append(("generated test suite < 5 s", f"{value:.2f} s", value < 5))
    return met


def format_report(results: dict[str, Any]) -> str:
    lines: list[str] = []

    def row(*cells: str) -> None:
        lines.append("| " + " | ".join(cells) + " |")

    def header(*cells: str) -> None:
        if lines:
            lines.append("")
        row(*cells)
        row("---", *["---:"] * (len(cells) - 1))

    if any(k in results for k in ("render", "time_to_green", "tests", "cold_start")):
        header("template", "time", "floor", "ratio")
    if render := results.get("render"):
        row(
            f"render, `cookiecutter --no-input` (median of {render['runs']})",
            f"{render['template_s']:.2f} s",
            f"{render['trivial_s']:.2f} s (one-file template)",
            f"{render['ratio']:.2f}x",
        )
    greens = results.get("time_to_green", {})
    for key, green in greens.items():
        tool, _, cache = key.rpartition(" ")
        install = "`uv sync`" if tool == "uv" else "`poetry install`"
        poetry = greens.get(f"poetry {cache}") if tool == "uv" else None
        row(
            f"time to green, {cache} package cache: render + {install}"
            f" + tests ({green['render_s']:.1f} + {green['install_s']:.1f}"
            f" + {green['tests_s']:.1f} s)",
            f"{green['total_s']:.1f} s",
            f"{poetry['total_s']:.1f} s (Poetry)" if poetry else "",
            f"{green['total_s'] / poetry['total_s']:.2f}x" if poetry else "",
        )
    if tests := results.get("tests"):
        row(
            f"generated test suite, `pytest` wall time (median of {tests['runs']})",
            f"{tests['wall_s']:.2f} s",
            f"pytest's own count: {tests['pytest_reported_s']:.2f} s",
            "",
        )
    if cold := results.get("cold_start"):
        row(
            f"cold start, `python -m app` to 200 on /health/ready (median of"
            f" {cold['runs']})",
            f"{cold['median_s']:.2f} s",
            "",
            "",
        )
    if serving := results.get("serving"):
        rounds = results["options"]["rounds"]
        header(
            f"POST /predict, one sample, {results['options']['connections']}"
            f" connections (median of {rounds})",
            "req/s",
            "req/CPU-s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "errors",
            "RSS idle / loaded MiB",
            "others' cores",
        )
        for name, s in serving.items():
            per_request = BATCH_SIZE if name == BATCH else 1
            unit = f" ({BATCH_SIZE} predictions each)" if per_request > 1 else ""
            row(
                name + unit,
                f"{s['rps']:.0f}",
                f"{s['rps_per_cpu']:.0f}",
                f"{s['p50_ms']:.1f}",
                f"{s['p90_ms']:.1f}",
                f"{s['p99_ms']:.1f}",
                str(s["errors"]),
                f"{s['rss_idle_mib']:.0f} / {s['rss_after_mib']:.0f}",
                f"{s['others_cores']:.2f}",
            )
        if BATCH in serving:
            b = serving[BATCH]
            row(
                "service, /predict/batch, predictions/s",
                f"{b['rps'] * BATCH_SIZE:.0f}",
                f"{b['rps_per_cpu'] * BATCH_SIZE:.0f}",
                *[""] * 6,
            )
        header("ratio of medians", "req/s", "req/CPU-s", "p50", "p99", "req/s by round")
        for name, r in results["ratios"].items():
            by_round = r["rps_per_round"]
            row(
                name,
                *(f"{r[k]:.2f}x" for k in ("rps", "rps_per_cpu", "p50", "p99")),
                f"{r['rps_per_round_median']:.2f}x ({min(by_round):.2f}-"
                f"{max(by_round):.2f})",
            )
    if met := results.get("targets"):
        header("target", "this run", "met")
        for label, figure, ok in met:
            row(label, figure, "yes" if ok else "**no**")
    return "\n".join(lines)
