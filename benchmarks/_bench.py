"""Shared pieces of waflow's benchmarks: timing loops, machine facts, the result file, its table.

Standard library only: the harness (``run.py``, under the dev virtualenv) and every benchmark script
(under ``.bench-venv``, next to pywa) import it.

A benchmark times each *contender* (one way of doing the same job) in ``repeats`` rounds of
``iterations`` calls, after ``warmup`` untimed calls. Within a round the contenders of a group take
turns every ``chunk`` calls, in an order rotated at every turn, so that drift of the machine
(frequency scaling, a noisy neighbour, a shared VM) falls on all of them alike. A contender's figure
is the median over the rounds of its mean time per call; a ratio is the quotient of two such
medians, and its spread is the lowest and highest quotient of the same two contenders in one round.

Wall-clock time (``time.perf_counter_ns``) is the figure; the thread's CPU time
(``time.thread_time_ns``) is recorded next to it, since on a shared machine it is the steadier of
the two: time the process spends descheduled counts in the first only.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "BenchResult",
    "Group",
    "LoadMonitor",
    "Ratio",
    "Row",
    "Settings",
    "Table",
    "Timing",
    "bench_arguments",
    "busy_cpus",
    "environment",
    "filesystem_of",
    "load_result",
    "print_profile",
    "ratio",
    "render_markdown",
    "settings_from",
    "time_async",
    "time_sync",
    "write_result",
]

#: Bumped when the layout of a result file changes.
SCHEMA_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent

SyncCall = Callable[[], object]
AsyncCall = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Settings:
    """How much to run: ``repeats`` rounds of ``iterations`` calls per contender, after ``warmup``.

    Within a round the contenders take turns every ``chunk`` calls.
    """

    repeats: int = 7
    iterations: int = 2_000
    warmup: int = 500
    chunk: int = 100

    def __post_init__(self) -> None:
        if min(self.repeats, self.iterations, self.chunk) < 1 or self.warmup < 0:
            raise ValueError(f"every count must be positive: {self}")


@dataclass
class Timing:
    """Mean microseconds per call in each round: wall clock and the thread's CPU time."""

    wall_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


@dataclass
class Row:
    """One contender of a group and its :class:`Timing`."""

    name: str
    timing: Timing
    note: str = ""

    @property
    def median_us(self) -> float:
        return statistics.median(self.timing.wall_us)

    @property
    def cpu_median_us(self) -> float:
        return statistics.median(self.timing.cpu_us)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "note": self.note,
            "median_us": self.median_us,
            "min_us": min(self.timing.wall_us),
            "max_us": max(self.timing.wall_us),
            "cpu_median_us": self.cpu_median_us,
            "samples_us": self.timing.wall_us,
            "cpu_samples_us": self.timing.cpu_us,
        }


@dataclass
class Group:
    """Contenders doing the same job, timed in the same rounds; ``baseline`` names the floor."""

    name: str
    baseline: str
    rows: list[Row]

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no contender {name!r} in group {self.name!r}")


@dataclass(frozen=True)
class Ratio:
    """A quotient of wall-clock medians, its range over the rounds, the CPU-time quotient.

    The ``target`` is a ceiling (a cost ratio: at most) or, with ``at_least``, a floor (a speed-up).
    """

    name: str
    value: float
    low: float
    high: float
    cpu_value: float
    target: float | None = None
    at_least: bool = False

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.at_least else self.value <= self.target


@dataclass
class Table:
    """A table of figures that are not per-call timings (rates over a run, windows, …)."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    #: Per column: right-align it (numbers)?
    numeric: list[bool] = field(default_factory=list)


@dataclass
class BenchResult:
    """Everything one benchmark run reports; written as JSON by :func:`write_result`."""

    benchmark: str
    title: str
    description: str
    settings: Settings
    groups: list[Group]
    ratios: list[Ratio]
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    #: What one call handles (``"event"``): the tables then also show calls per second.
    rate_unit: str | None = None
    tables: list[Table] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "benchmark": self.benchmark,
            "title": self.title,
            "description": self.description,
            "settings": asdict(self.settings),
            "notes": self.notes,
            "environment": self.environment,
            "rate_unit": self.rate_unit,
            "groups": [
                {
                    "name": group.name,
                    "baseline": group.baseline,
                    "rows": [row.as_dict() for row in group.rows],
                }
                for group in self.groups
            ],
            "ratios": [
                {
                    "name": r.name,
                    "value": r.value,
                    "low": r.low,
                    "high": r.high,
                    "cpu_value": r.cpu_value,
                    "target": r.target,
                    "at_least": r.at_least,
                    "met": r.met,
                }
                for r in self.ratios
            ],
            "tables": [asdict(table) for table in self.tables],
        }


def ratio(
    name: str,
    numerator: Row,
    denominator: Row,
    target: float | None = None,
    *,
    at_least: bool = False,
) -> Ratio:
    """The ratio of two contenders' medians, and the range of their ratio within one round.

    For a speed-up (how many times more calls per second the denominator makes) pass the slower
    contender as ``numerator``, and ``at_least=True`` when the target is a floor.
    """
    pairs = zip(numerator.timing.wall_us, denominator.timing.wall_us, strict=True)
    per_round = [ours / theirs for ours, theirs in pairs]
    return Ratio(
        name,
        value=numerator.median_us / denominator.median_us,
        low=min(per_round),
        high=max(per_round),
        cpu_value=numerator.cpu_median_us / denominator.cpu_median_us,
        target=target,
        at_least=at_least,
    )


def _chunks(iterations: int, chunk: int) -> list[int]:
    full, rest = divmod(iterations, chunk)
    return [chunk] * full + ([rest] if rest else [])


def _orders(names: Sequence[str], step: int) -> list[str]:
    # Rotated at every step, so no contender always runs first or right after another one.
    shift = step % len(names)
    return [*names[shift:], *names[:shift]]


class _Rounds:
    """Bookkeeping of the interleaved rounds, shared by :func:`time_sync` and :func:`time_async`."""

    def __init__(self, names: Sequence[str], settings: Settings) -> None:
        self.names = list(names)
        self.settings = settings
        self.timings = {name: Timing() for name in self.names}
        self._wall = dict.fromkeys(self.names, 0)
        self._cpu = dict.fromkeys(self.names, 0)

    def turns(self) -> Iterator[tuple[str, int]]:
        """``(contender, calls)`` for every turn; report each turn's time with :meth:`record`."""
        settings = self.settings
        for round_number in range(settings.repeats):
            self._wall = dict.fromkeys(self.names, 0)
            self._cpu = dict.fromkeys(self.names, 0)
            gc.collect()
            for step, size in enumerate(_chunks(settings.iterations, settings.chunk)):
                for name in _orders(self.names, round_number + step):
                    yield name, size
            for name in self.names:
                self.timings[name].wall_us.append(self._wall[name] / settings.iterations / 1_000)
                self.timings[name].cpu_us.append(self._cpu[name] / settings.iterations / 1_000)

    def record(self, name: str, wall_ns: int, cpu_ns: int) -> None:
        self._wall[name] += wall_ns
        self._cpu[name] += cpu_ns


def time_sync(contenders: dict[str, SyncCall], settings: Settings) -> dict[str, Timing]:
    """The :class:`Timing` of every contender over ``settings.repeats`` interleaved rounds."""
    for call in contenders.values():
        for _ in range(settings.warmup):
            call()
    rounds = _Rounds(list(contenders), settings)
    for name, calls in rounds.turns():
        call = contenders[name]
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(calls):
            call()
        rounds.record(name, time.perf_counter_ns() - wall, time.thread_time_ns() - cpu)
    return rounds.timings


async def time_async(contenders: dict[str, AsyncCall], settings: Settings) -> dict[str, Timing]:
    """:func:`time_sync` for coroutine functions: each call awaited in turn, in the running loop."""
    for call in contenders.values():
        for _ in range(settings.warmup):
            await call()
    rounds = _Rounds(list(contenders), settings)
    for name, calls in rounds.turns():
        call = contenders[name]
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(calls):
            await call()
        rounds.record(name, time.perf_counter_ns() - wall, time.thread_time_ns() - cpu)
    return rounds.timings


def _cpu_seconds() -> tuple[float, float] | None:
    """Seconds all CPUs spent busy and stolen by the hypervisor since boot (Linux), else None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


class LoadMonitor:
    """How much CPU everything but this process used while a benchmark ran (Linux only).

    Other processes and a hypervisor's steal make every figure noisy; this says how much there was.
    """

    def __init__(self) -> None:
        self._start = (time.perf_counter(), time.process_time(), _cpu_seconds())

    def result(self) -> dict[str, float] | None:
        """``other_cpus`` and ``steal_cpus``: average CPUs busy elsewhere / stolen, since start."""
        wall0, own0, machine0 = self._start
        machine1 = _cpu_seconds()
        if machine0 is None or machine1 is None:
            return None
        wall = time.perf_counter() - wall0
        own = time.process_time() - own0
        return {
            "other_cpus": round(max(machine1[0] - machine0[0] - own, 0.0) / wall, 2),
            "steal_cpus": round((machine1[1] - machine0[1]) / wall, 2),
        }


def busy_cpus(interval: float = 1.0) -> float | None:
    """CPUs busy with other work over the next ``interval`` seconds (this process sleeps)."""
    monitor = LoadMonitor()
    time.sleep(interval)
    load = monitor.result()
    return None if load is None else load["other_cpus"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "waflow"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


def environment(packages: Iterable[str], *, load: dict[str, float] | None = None) -> dict[str, Any]:
    """Facts that make a result comparable: date, machine, Python, versions of ``packages``.

    ``load`` is what a :class:`LoadMonitor` saw during the run.
    """
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        usable_cpus: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable_cpus = None
    try:
        load_average: list[float] | None = [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):  # not on Unix
        load_average = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "load_average": load_average,
        "load_during_run": load,
        "waflow_revision": _git_revision(),
        "packages": versions,
    }


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` (``ext4``, ``tmpfs``, …), from /proc/mounts.

    It decides what an ``fsync`` costs: nothing on tmpfs, a disk flush on ext4.
    """
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            entries = [line.split() for line in mounts]
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    best, kind = "", "unknown"
    for entry in entries:
        if len(entry) < 3:
            continue
        mount_point = entry[1]
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, entry[2]
    return kind


def _package_of(filename: str, packages: Sequence[str]) -> str:
    parts = Path(filename).parts
    for package in packages:
        if package in parts:
            return package
    if filename.startswith(("~", "<")):
        return "builtins"
    return "stdlib/other"


def print_profile(
    profiler: cProfile.Profile, calls: int, packages: Sequence[str], *, top: int = 25
) -> None:
    """cProfile's view of ``calls`` calls: own time by package, then the costliest functions.

    cProfile slows small functions down most: read the shares, not the microseconds.
    """
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own = {function: (row[1], row[2], row[3]) for function, row in raw.items()}
    by_package: dict[str, float] = {}
    for (filename, _line, _name), (_count, seconds, _cumulative) in own.items():
        package = _package_of(filename, packages)
        by_package[package] = by_package.get(package, 0.0) + seconds
    total = sum(by_package.values())
    shares = ", ".join(
        f"{package} {seconds / total:.0%}"
        for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])
    )
    print(f"  {total / calls * 1e6:8.1f} µs/call of own time under cProfile: {shares}")
    print(f"  the {top} functions with the most own time (per call; calls per call; cumulative):")
    ranked = sorted(own.items(), key=lambda item: -item[1][1])[:top]
    for (filename, line, name), (count, seconds, cumulative) in ranked:
        where = filename if filename.startswith(("~", "<")) else f"{_short(filename)}:{line}"
        print(
            f"  {seconds / calls * 1e6:8.1f} µs {count / calls:6.1f}× "
            f"{cumulative / calls * 1e6:8.1f} µs  {where} {name}"
        )


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "main"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) :])
    return filename


def bench_arguments(description: str) -> argparse.Namespace:
    """The command line every benchmark script accepts (``run.py`` passes ``--output``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", type=Path, help="write the result as JSON to this file")
    parser.add_argument(
        "--quick", action="store_true", help="a few short rounds: checks that it runs, no numbers"
    )
    parser.add_argument("--repeats", type=int, help="timed blocks per contender")
    parser.add_argument("--iterations", type=int, help="calls per timed block")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile waflow's side with cProfile instead of timing (benchmarks that support it)",
    )
    return parser.parse_args()


def settings_from(arguments: argparse.Namespace, default: Settings | None = None) -> Settings:
    """The :class:`Settings` a command line asks for."""
    base = Settings(repeats=3, iterations=200, warmup=50, chunk=50) if arguments.quick else default
    base = base or Settings()
    return Settings(
        repeats=arguments.repeats or base.repeats,
        iterations=arguments.iterations or base.iterations,
        warmup=base.warmup,
        chunk=min(base.chunk, arguments.iterations or base.iterations),
    )


def write_result(result: BenchResult, path: Path) -> None:
    """Write ``result`` as pretty JSON (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.as_dict(), indent=2, ensure_ascii=False) + "\n")


def load_result(path: Path) -> dict[str, Any]:
    """A result file as written by :func:`write_result`."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"{path}: result schema {data.get('schema')}, expected {SCHEMA_VERSION}")
    return data


def _format_us(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _describe_load(env: dict[str, Any]) -> str:
    load = env.get("load_during_run")
    if not load:
        return f"Load average at start: {env.get('load_average')}."
    return (
        f"Meanwhile other processes kept {load['other_cpus']:.2f} CPUs busy on average "
        f"(hypervisor steal {load['steal_cpus']:.2f})."
    )


def _format_rate(per_second: float) -> str:
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:,.1f}"


def _render_table(table: dict[str, Any]) -> list[str]:
    numeric = table.get("numeric") or [False] * len(table["columns"])
    lines = [
        f"{table['title']}:",
        "",
        "| " + " | ".join(table["columns"]) + " |",
        "| " + " | ".join("---:" if right else "---" for right in numeric) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
    return lines


def render_markdown(data: dict[str, Any]) -> str:
    """A result (as loaded by :func:`load_result`) as a markdown section with tables."""
    env = data["environment"]
    settings = data["settings"]
    unit = data.get("rate_unit")
    packages = ", ".join(
        f"{name} {version}" for name, version in env["packages"].items() if version is not None
    )
    rate_head = f" {unit}s/s |" if unit else ""
    rate_rule = " ---: |" if unit else ""
    lines = [
        f"### {data['title']} (`{data['benchmark']}`)",
        "",
        f"{env['date']} · Python {env['python']} ({env['implementation']}) · "
        f"{env['cpu']} · {env['cpu_count']} CPUs · {env['platform']}",
        f"{packages} · waflow revision {env.get('waflow_revision') or 'unknown'}",
        f"{settings['repeats']} rounds × {settings['iterations']:,} calls per contender "
        f"(taking turns every {settings['chunk']:,}), after {settings['warmup']:,} warm-up calls; "
        f"median of the rounds' mean per call. {_describe_load(env)}",
        "",
        "| group | contender | median µs/call |" + rate_head + " min–max µs | × baseline "
        "| CPU µs/call | × baseline |",
        "| --- | --- | ---: |" + rate_rule + " ---: | ---: | ---: | ---: |",
    ]
    for group in data["groups"]:
        baseline = next(row for row in group["rows"] if row["name"] == group["baseline"])
        for row in group["rows"]:
            rate = f" {_format_rate(1e6 / row['median_us'])} |" if unit else ""
            lines.append(
                f"| {group['name']} | {row['name']} | {_format_us(row['median_us'])} |{rate} "
                f"{_format_us(row['min_us'])}–{_format_us(row['max_us'])} | "
                f"{row['median_us'] / baseline['median_us']:.2f} | "
                f"{_format_us(row['cpu_median_us'])} | "
                f"{row['cpu_median_us'] / baseline['cpu_median_us']:.2f} |"
            )
    if data["ratios"]:
        lines += [
            "",
            "| ratio (wall clock) | median | range over rounds | CPU time | target |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
    for item in data["ratios"]:
        if item["target"] is None:
            verdict = "—"
        else:
            sign = "≥" if item.get("at_least") else "≤"
            verdict = f"{sign} {item['target']:.2f}: {'met' if item['met'] else '**missed**'}"
        lines.append(
            f"| {item['name']} | {item['value']:.2f} | {item['low']:.2f}–{item['high']:.2f} "
            f"| {item['cpu_value']:.2f} | {verdict} |"
        )
    for table in data.get("tables", []):
        lines.append("")
        lines += _render_table(table)
    if data["notes"]:
        lines.append("")
        lines += [f"- {note}" for note in data["notes"]]
    return "\n".join(lines) + "\n"
