"""Instructions per request, counted by valgrind's callgrind: work, not time.

On these shared 2-core machines the time of the same code moves by ±20 µs a request from
one process to the next and with the neighbours' load; an instruction count repeats
(the same binary, inputs and environment give the same count whatever else the machine
does). It leaves out what instructions do not show: cache misses, and a server's system
calls and switches. A benchmark states both kinds of figure, each for what it shows.

A command is run twice under callgrind, doing ``n`` and ``3 n`` requests after the same
start-up and warm-up; the difference over ``2 n`` is what one request costs, start-up
and warm-up cancelled out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable

from _harness import BenchError

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def available() -> bool:
    return shutil.which("valgrind") is not None


def instructions(argv: list[str]) -> int:
    """Instructions the command executed (all threads), under callgrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts every run
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.devnull}", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    found = _COLLECTED.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise BenchError(f"callgrind run failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return int(found.group(1))


def per_request(argv: Callable[[int], list[str]], n: int) -> float:
    """Instructions per request of ``argv(requests)``: (count at 3n - count at n) / 2n."""
    return (instructions(argv(3 * n)) - instructions(argv(n))) / (2 * n)
