"""How long the command line takes to start, and what an idle server holds (issues 9, 16).

    uv run python benchmarks/startup.py [--runs 10] [--help-runs 3]

Each figure is the median over ``--runs`` fresh processes, wall time and CPU time (user +
system; steadier than wall time on a shared machine), next to two baselines measured in
the same run: ``python -c pass`` and a bare Typer app with one command (what any Typer
``--help`` costs).

- ``signoff --help`` and ``signoff inbox --help``;
- every command's ``--help`` (``--help-runs`` each): the median and the slowest;
- ``signoff list`` against a closed port: everything an HTTP command loads, then one
  refused connection;
- ``signoff serve`` on SQLite (the example policies and users) until ``/readyz`` answers
  200: in a new data folder (it migrates, makes a signing key and the first admin token)
  and again in the same folder; with its resident memory (VmRSS) once ready, next to a
  bare FastAPI app served by uvicorn (``import fastapi, uvicorn``, one route).

For where the time goes: ``python -X importtime -m signoff --help 2> imports.txt``.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BARE_TYPER = """
import typer
app = typer.Typer(name="x", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)
@app.command()
def one(n: int = 1) -> None:
    '''One.'''
@app.command()
def two(n: int = 1) -> None:
    '''Two.'''
app()
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, children_cpu() - cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BARE_SERVER = """
import os, fastapi, uvicorn
app = fastapi.FastAPI()
@app.get("/readyz")
def ready() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["SIGNOFF_PORT"]), log_level="info")
"""


def serve_ready(
    data_dir: Path, env: dict[str, str], argv: list[str] | None = None
) -> tuple[float, float, float]:
    """Start ``signoff serve`` (or ``argv``) and wait for ``/readyz``: wall and CPU seconds
    until then, and its resident memory in MiB once ready."""
    port = free_port()
    env = {**env, "SIGNOFF_DATA_DIR": str(data_dir), "SIGNOFF_PORT": str(port)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv or [sys.executable, "-m", "signoff", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("signoff serve exited before it was ready") from None
                time.sleep(0.01)
        wall = time.perf_counter() - start
        with open(f"/proc/{proc.pid}/stat") as f:  # Linux: utime and stime, in ticks
            fields = f.read().rsplit(")", 1)[1].split()
        # utime, stime, and those of its children waited for (the migration's)
        cpu = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return wall, cpu, rss / 1024
    finally:
        proc.terminate()
        proc.wait()


def report(name: str, samples: list[tuple[float, ...]], base: float | None = None) -> float:
    """Print the medians; returns the median CPU time (ms). ``base``: the baseline's, for a
    ratio."""
    wall = statistics.median(s[0] for s in samples) * 1000
    cpu = statistics.median(s[1] for s in samples) * 1000
    ratio = f"   cpu {cpu / base:4.2f}x the baseline" if base else ""
    print(f"  {name:44s} wall {wall:6.0f} ms   cpu {cpu:6.0f} ms{ratio}")
    return cpu


def memory(name: str, samples: list[tuple[float, ...]], base: float | None = None) -> float:
    rss = statistics.median(s[2] for s in samples)
    ratio = f"   {rss / base:4.2f}x the baseline" if base else ""
    print(f"  {name:44s} VmRSS {rss:5.0f} MiB{ratio}")
    return rss


def every_command() -> list[list[str]]:
    """The words of every command (``[["serve"], ["audit", "verify"], ...]``)."""
    from signoff.entrypoints.cli.main import app

    def named(info: Any) -> str:
        return str(info.name or info.callback.__name__.replace("_", "-"))

    words = [[named(info)] for info in app.registered_commands]
    for group in app.registered_groups:
        assert group.typer_instance is not None
        words += [[str(group.name), named(i)] for i in group.typer_instance.registered_commands]
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--help-runs", type=int, default=3, help="runs of each command's help")
    args = parser.parse_args()
    runs = args.runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env["SIGNOFF_URL"] = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    signoff = [sys.executable, "-m", "signoff"]
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_typer.py"
        bare.write_text(BARE_TYPER)
        commands = {
            "baseline: python -c pass": [sys.executable, "-c", "pass"],
            "baseline: bare Typer app --help": [sys.executable, str(bare), "--help"],
            "signoff --help": [*signoff, "--help"],
            "signoff inbox --help": [*signoff, "inbox", "--help"],
            "signoff list (server down)": [*signoff, "list"],
        }
        print(f"CLI, median of {runs} runs:")
        base = None
        for name, argv in commands.items():
            timed(argv, env)  # warm the page cache
            cpu = report(name, [timed(argv, env) for _ in range(runs)], base)
            base = cpu if "Typer" in name else base

        helps = {" ".join(words): [*signoff, *words, "--help"] for words in every_command()}
        print(f"every command's --help ({len(helps)}), median of {args.help_runs} runs each:")
        medians = {}
        for name, argv in helps.items():
            samples = [timed(argv, env) for _ in range(args.help_runs)]
            medians[name] = tuple(statistics.median(s[i] for s in samples) for i in (0, 1))
        walls = sorted(m[0] for m in medians.values())
        cpus = sorted(m[1] for m in medians.values())
        slowest = max(medians, key=lambda n: medians[n][1])
        print(f"  {'median over the commands':44s} wall {statistics.median(walls) * 1000:6.0f} ms"
              f"   cpu {statistics.median(cpus) * 1000:6.0f} ms")  # fmt: skip
        print(f"  {'slowest: ' + slowest:44s} wall {medians[slowest][0] * 1000:6.0f} ms"
              f"   cpu {medians[slowest][1] * 1000:6.0f} ms")  # fmt: skip

        print(f"signoff serve on SQLite until /readyz is 200, median of {runs} runs:")
        bare_server = [sys.executable, "-c", BARE_SERVER]
        serve_ready(Path(tempfile.mkdtemp(dir=tmp)), env, bare_server)  # warm the cache
        baseline = [
            serve_ready(Path(tempfile.mkdtemp(dir=tmp)), env, bare_server) for _ in range(runs)
        ]
        base = report("baseline: bare FastAPI app on uvicorn", baseline)
        first = [serve_ready(Path(tempfile.mkdtemp(dir=tmp)), env) for _ in range(runs)]
        report("new data folder (migrates)", first, base)
        again = Path(tempfile.mkdtemp(dir=tmp))
        serve_ready(again, env)
        restarts = [serve_ready(again, env) for _ in range(runs)]
        report("same data folder (restart)", restarts, base)
        print("  resident memory once ready (VmRSS), median:")
        rss = memory("baseline: bare FastAPI app on uvicorn", baseline)
        memory("new data folder (migrated)", first, rss)
        memory("same data folder (restart)", restarts, rss)


if __name__ == "__main__":
    main()
