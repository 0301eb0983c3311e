"""How long the command line takes to start (issue 9).

    uv run python benchmarks/startup.py [--runs 10]

Each figure is the median over ``--runs`` fresh processes, wall time and CPU time (user +
system; steadier than wall time on a shared machine), next to two baselines measured in
the same run: ``python -c pass`` and a bare Typer app with one command (what any Typer
``--help`` costs).

- ``signoff --help`` and ``signoff inbox --help``;
- ``signoff list`` against a closed port: everything an HTTP command loads, then one
  refused connection;
- ``signoff serve`` on SQLite until ``/readyz`` answers 200: in a new data folder (it
  migrates, makes a signing key and the first admin token) and again in the same folder.

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


def serve_ready(data_dir: Path, env: dict[str, str]) -> tuple[float, float]:
    port = free_port()
    env = {**env, "SIGNOFF_DATA_DIR": str(data_dir), "SIGNOFF_PORT": str(port)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "signoff", "serve"],
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
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return wall, cpu
    finally:
        proc.terminate()
        proc.wait()


def report(name: str, samples: list[tuple[float, float]]) -> None:
    wall = statistics.median(s[0] for s in samples) * 1000
    cpu = statistics.median(s[1] for s in samples) * 1000
    print(f"  {name:44s} wall {wall:6.0f} ms   cpu {cpu:6.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
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
        for name, argv in commands.items():
            timed(argv, env)  # warm the page cache
            report(name, [timed(argv, env) for _ in range(runs)])
        print(f"signoff serve on SQLite until /readyz is 200, median of {runs} runs:")
        first = [serve_ready(Path(tempfile.mkdtemp(dir=tmp)), env) for _ in range(runs)]
        report("new data folder (migrates)", first)
        again = Path(tempfile.mkdtemp(dir=tmp))
        serve_ready(again, env)
        report("same data folder (restart)", [serve_ready(again, env) for _ in range(runs)])


if __name__ == "__main__":
    main()
