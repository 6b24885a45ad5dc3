"""Run waflow's benchmarks next to the peer library, in a virtualenv of their own (``make bench``).

    python benchmarks/run.py                   # every benchmark
    python benchmarks/run.py send_overhead     # only these
    python benchmarks/run.py --quick           # a smoke run: checks that everything runs

Standard library only, so any ``python3`` (3.10+) can run it. The benchmarks themselves run under
``.bench-venv``: pywa at the pinned version and waflow (with its ``redis`` and ``testing`` extras)
installed editable from this working tree, so both libraries share one set of dependencies (httpx,
…) and edits to waflow need no reinstall. The virtualenv is created when missing and rebuilt from
scratch when outdated (another pin or extra, a changed ``pyproject.toml``, another Python), which
needs network access to PyPI only.

Each benchmark writes its result to ``benchmarks/results/<name>.json`` (not committed: raw numbers
belong to one machine; ``docs/performance.md`` keeps the reviewed ones) and this prints it as a
markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from _bench import busy_cpus, load_result, render_markdown

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENV_DIR = REPO_ROOT / ".bench-venv"
RESULTS_DIR = BENCH_DIR / "results"
STAMP = VENV_DIR / "waflow-bench.json"

#: The benchmark scripts, ``benchmarks/<name>.py``, in the order they run. Add one here.
BENCHMARKS: tuple[str, ...] = ("send_overhead", "webhook_ingest", "engine")

#: What the benchmark virtualenv holds besides waflow itself (installed editable from REPO_ROOT).
REQUIREMENTS: tuple[str, ...] = ("pywa==4.5.0",)
#: waflow's extras the benchmarks use: ``redis`` (RedisStore), ``testing`` (``waflow.testing``).
WAFLOW_EXTRAS: tuple[str, ...] = ("redis", "testing")


def _venv_python() -> Path:
    return VENV_DIR / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _fingerprint() -> str:
    """Changes whenever the virtualenv would have to be built differently."""
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    digest.update(str(REPO_ROOT).encode())  # the editable install points here
    digest.update("\n".join(REQUIREMENTS).encode())
    digest.update(",".join(WAFLOW_EXTRAS).encode())
    digest.update((REPO_ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def _venv_is_current(fingerprint: str) -> bool:
    python = _venv_python()
    if not python.exists():
        return False
    try:
        recorded = json.loads(STAMP.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return False
    if recorded != fingerprint:
        return False
    # A Python upgraded or removed underneath the virtualenv leaves a python that cannot start.
    probe = subprocess.run(
        [python, "-c", "import waflow, waflow.testing, pywa, redis"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def ensure_venv(*, rebuild: bool = False) -> Path:
    """The python of an up-to-date ``.bench-venv``, creating or rebuilding it when needed."""
    fingerprint = _fingerprint()
    if not rebuild and _venv_is_current(fingerprint):
        return _venv_python()
    waflow_spec = f"{REPO_ROOT}[{','.join(WAFLOW_EXTRAS)}]"
    print(
        f"bench: building {VENV_DIR.name} ({', '.join(REQUIREMENTS)}, "
        f"waflow[{','.join(WAFLOW_EXTRAS)}] -e .)",
        flush=True,
    )
    STAMP.unlink(missing_ok=True)
    venv.EnvBuilder(clear=True, with_pip=True).create(VENV_DIR)
    python = _venv_python()
    pip: list[str | Path] = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    # An old bundled pip cannot install a hatchling project editable (PEP 660).
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--editable", waflow_spec, *REQUIREMENTS], check=True)
    STAMP.write_text(
        json.dumps(
            {
                "fingerprint": fingerprint,
                "requirements": list(REQUIREMENTS),
                "waflow_extras": list(WAFLOW_EXTRAS),
            }
        )
        + "\n",
        encoding="utf-8",
    )
    return python


def warn_if_busy() -> None:
    """Say so when other processes compete for the CPUs: the numbers would be noisy."""
    busy = busy_cpus()
    if busy is not None and busy > 0.2:
        print(
            f"bench: warning: other processes keep {busy:.1f} of {os.cpu_count()} CPUs busy; "
            "they compete with the benchmarks, so expect noisy numbers",
            file=sys.stderr,
            flush=True,
        )


def run_benchmark(python: Path, name: str, extra: list[str]) -> Path | None:
    """Run ``benchmarks/<name>.py`` under ``python``; the path of its result, or None if it failed."""
    output = RESULTS_DIR / f"{name}.json"
    output.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    print(f"bench: running {name}", flush=True)
    completed = subprocess.run(
        [python, str(BENCH_DIR / f"{name}.py"), "--output", str(output), *extra],
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    if completed.returncode != 0 or not output.exists():
        print(f"bench: {name} failed (exit {completed.returncode})", file=sys.stderr)
        return None
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: {BENCHMARKS})"
    )
    parser.add_argument("--quick", action="store_true", help="short runs, to check they work")
    parser.add_argument("--rebuild", action="store_true", help=f"rebuild {VENV_DIR.name} first")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = arguments.names or list(BENCHMARKS)

    warn_if_busy()  # before building the virtualenv, which loads the machine itself
    python = ensure_venv(rebuild=arguments.rebuild)
    extra = ["--quick"] if arguments.quick else []
    failed: list[str] = []
    sections: list[str] = []
    for name in names:
        output = run_benchmark(python, name, extra)
        if output is None:
            failed.append(name)
            continue
        sections.append(render_markdown(load_result(output)))
        print(f"bench: {name} → {output.relative_to(REPO_ROOT)}", flush=True)

    print()
    print("\n".join(sections), end="")
    if arguments.quick:
        print("\n(--quick: too few calls for the numbers to mean anything)")
    if failed:
        print(f"\nbench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
