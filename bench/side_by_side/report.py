"""Statistics and the printed side-by-side table (stdlib only).

A row holds one phase in one dtype: the per-round values of each side (seconds, or seconds per
audio second), each side's peak RSS and CPU/wall ratio. Ratios are ours / core: below 1 ours is
faster (or lighter); the issue's target is at most ``TARGET`` on time and at most 1 on memory.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Optional, Sequence

TARGET = 0.8
GB = 1e9


@dataclass
class Row:
    phase: str
    dtype: str
    unit: str = "s"
    ours: list = field(default_factory=list)
    core: list = field(default_factory=list)
    ours_peak: Optional[int] = None
    core_peak: Optional[int] = None
    ours_cpu: Optional[float] = None  # CPU seconds / wall seconds (≈ busy cores)
    core_cpu: Optional[float] = None
    note: str = ""

    def ratio(self, how: str = "median") -> Optional[float]:
        return ratio(summary(self.ours, how), summary(self.core, how))

    def peak_ratio(self) -> Optional[float]:
        return ratio(self.ours_peak, self.core_peak)


def summary(values: Sequence[float], how: str = "median") -> Optional[float]:
    """min or median of ``values``; None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return min(values) if how == "min" else statistics.median(values)


def ratio(ours: Optional[float], core: Optional[float]) -> Optional[float]:
    """ours / core, None when either is missing or core is zero."""
    if ours is None or core is None or core == 0:
        return None
    return ours / core


def fmt_value(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 0.1:
        return f"{x:.2f}"
    return f"{x:.4f}"


def fmt_ratio(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}x"


def fmt_gb(n: Optional[float]) -> str:
    return "-" if n is None else f"{n / GB:.2f}"


def fmt_cpu(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.1f}"


def verdict(row: Row) -> str:
    """"ok" when ours meets the target (time ≤ 0.8x core, peak RSS ≤ core's), else what is behind."""
    time_ratio, peak = row.ratio("median"), row.peak_ratio()
    if time_ratio is None:
        return ""
    behind = []
    if time_ratio > TARGET:
        behind.append("time")
    if peak is not None and peak > 1.0:
        behind.append("memory")
    return "ok" if not behind else "behind: " + "+".join(behind)


HEADER = ("phase", "dtype", "unit", "ours min", "ours med", "core min", "core med", "ratio med",
          "ratio min", "ours GB", "core GB", "GB ratio", "cpu/wall o|c", "")


def table_cells(row: Row) -> tuple:
    return (row.phase, row.dtype, row.unit,
            fmt_value(summary(row.ours, "min")), fmt_value(summary(row.ours)),
            fmt_value(summary(row.core, "min")), fmt_value(summary(row.core)),
            fmt_ratio(row.ratio("median")), fmt_ratio(row.ratio("min")),
            fmt_gb(row.ours_peak), fmt_gb(row.core_peak), fmt_ratio(row.peak_ratio()),
            f"{fmt_cpu(row.ours_cpu)}|{fmt_cpu(row.core_cpu)}", verdict(row))


def format_table(rows: Sequence[Row]) -> str:
    """Fixed-width text table, one line per row, then the rows' notes."""
    cells = [HEADER] + [table_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(v.ljust(w) if i < 3 or i == len(HEADER) - 1 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(c, widths))).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    notes = [f"  {r.phase} {r.dtype}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["notes:"] + notes if notes else []))


def format_markdown(rows: Sequence[Row]) -> str:
    """The same figures as a Markdown table (for the README / the issue)."""
    head = "| phase | dtype | ours (median) | core (median) | ratio | peak RSS ours / core (GB) |"
    lines = [head, "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.phase} | {r.dtype} | {fmt_value(summary(r.ours))} {r.unit} | "
                     f"{fmt_value(summary(r.core))} {r.unit} | {fmt_ratio(r.ratio())} | "
                     f"{fmt_gb(r.ours_peak)} / {fmt_gb(r.core_peak)} |")
    return "\n".join(lines)


# --- from the workers' per-round results to rows ---------------------------------------------------
def step_intervals(stamps: Sequence[float]) -> list:
    """Seconds of each sampler step after the first, from the times taken at the start and after
    every step (the first interval also holds the run's set-up: encoding, caches, model loading)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return gaps[1:]


def first_step_overhead(stamps: Sequence[float]) -> Optional[float]:
    """Set-up time before the first step: the first interval minus the median step."""
    steps = step_intervals(stamps)
    if len(stamps) < 2 or not steps:
        return None
    return (stamps[1] - stamps[0]) - statistics.median(steps)


def _peak(results: Sequence[dict]) -> Optional[int]:
    """Highest peak of the rounds: GPU memory where measured (cuda), else the process's RSS."""
    key = "peak_device_memory" if any("peak_device_memory" in r for r in results) else "peak_rss"
    peaks = [r.get(key) for r in results if r.get(key) is not None]
    return max(peaks) if peaks else None


def _cpu_ratio(results: Sequence[dict]) -> Optional[float]:
    if not any("cpu_seconds" in r for r in results):
        return None
    wall = sum(r.get("seconds", 0.0) for r in results)
    cpu = sum(r.get("cpu_seconds", 0.0) for r in results)
    return cpu / wall if wall > 0 else None


def rows_for(phase: str, dtype: str, ours: Sequence[dict], core: Sequence[dict], note: str = "") -> list:
    """Table rows of one phase from each side's per-round result dicts.

    ``generate`` gives two rows (the whole run and its median step, "guided_step"); the VAE
    phases are divided by the audio seconds they handled; ``lm`` by the tokens it generated."""
    def base(unit, o, c, row_phase=phase, row_note=note):
        return Row(row_phase, dtype, unit, o, c, _peak(ours), _peak(core), _cpu_ratio(ours), _cpu_ratio(core),
                   row_note)

    if phase == "lm":  # seconds per generated token (prompt prefill included), tokens/s in the note
        per = lambda rs: [r["seconds"] / r["tokens"] for r in rs if r.get("tokens")]  # noqa: E731
        rate = lambda rs: fmt_value(summary([r["tokens"] / r["seconds"] for r in rs if r.get("tokens")]))  # noqa: E731
        extra = f"tokens/s (median): ours {rate(ours)}, core {rate(core)}"
        return [base("s/token", per(ours), per(core), row_note=f"{note}; {extra}" if note else extra)]
    if phase.startswith("vae_"):
        per = lambda rs: [r["seconds"] / r["audio_seconds"] for r in rs if r.get("audio_seconds")]  # noqa: E731
        return [base("s/audio s", per(ours), per(core))]
    rows = [base("s", [r["seconds"] for r in ours], [r["seconds"] for r in core])]
    if phase == "generate":
        steps = lambda rs: [g for r in rs for g in step_intervals(r.get("step_stamps", []))]  # noqa: E731
        setup = [first_step_overhead(r.get("step_stamps", [])) for r in ours]
        setup_core = [first_step_overhead(r.get("step_stamps", [])) for r in core]
        rows.append(base("s/step", steps(ours), steps(core), "guided_step",
                         f"median step of the runs (steps 2..N); set-up before step 1: ours "
                         f"{fmt_value(summary(setup))} s, core {fmt_value(summary(setup_core))} s"))
    return rows
