"""``command``: runs the approved argv (no shell, no interpolation) if its executable is
allow-listed, in a fixed directory with a fixed environment, a timeout and output
limits."""

from __future__ import annotations

import subprocess
from pathlib import Path

from signoff.adapters.executors.masking import Mask
from signoff.domain.actions import Action
from signoff.domain.errors import InvalidInput
from signoff.services.ports import ExecutionOutcome


class CommandExecutor:
    kind = "command"

    def __init__(
        self,
        name: str,
        allow: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout_s: float,
        max_output: int,
        mask: Mask,
    ) -> None:
        self.name = name
        self.allow = frozenset(allow)
        self.cwd = cwd
        self._env = env  # may hold secrets
        self.timeout_s = timeout_s
        self.max_output = max_output
        self.mask = mask

    def __repr__(self) -> str:
        return f"CommandExecutor({self.name!r})"

    def check(self, action: Action) -> None:
        argv = action.params.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise InvalidInput(f"target {self.name} runs commands: params.argv must be strings")
        if argv[0] not in self.allow:
            raise InvalidInput(
                f"target {self.name} does not allow {argv[0]!r}: allowed are {sorted(self.allow)}"
            )
        extra = set(action.params) - {"argv"}
        if extra:
            raise InvalidInput(f"target {self.name} takes only params.argv, not {sorted(extra)}")

    def _cut(self, data: bytes) -> tuple[str, bool]:
        cut = len(data) > self.max_output
        return self.mask.text(data[: self.max_output].decode("utf-8", "replace")), cut

    def run(self, action: Action, read_only: bool) -> ExecutionOutcome:
        argv = [str(a) for a in action.params["argv"]]
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,
                env=self._env,
                capture_output=True,
                timeout=self.timeout_s,
                shell=False,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out, _ = self._cut(exc.stdout or b"")
            err, _ = self._cut(exc.stderr or b"")
            return ExecutionOutcome(
                False,
                f"killed: ran past {self.timeout_s:g} s",
                {"stdout": out, "stderr": err, "exit": None},
            )
        except OSError as exc:
            return ExecutionOutcome(
                False, f"not run: could not start: {exc.strerror}", {}, ran=False
            )
        out, out_cut = self._cut(done.stdout)
        err, err_cut = self._cut(done.stderr)
        output = {
            "exit": done.returncode,
            "stdout": out,
            "stderr": err,
            "truncated": out_cut or err_cut,
        }
        return ExecutionOutcome(done.returncode == 0, f"exit {done.returncode}", output)
