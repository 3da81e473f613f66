"""Running the `flipbench` console script in tests, and what every CLI outcome must look like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLIPBENCH = Path(sys.executable).parent / "flipbench"
QUICK_TIMEOUT = 60  # a command that fails validation or only reads the journal
RUN_TIMEOUT = 300  # a real run of the embedded model


def flipbench(
    *args: str, cwd: Path, timeout: float = QUICK_TIMEOUT, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """Run the console script in `cwd`, with no journal from the environment and no stdin,
    `columns` wide (200 by default: wide tables on one line each)."""
    env = {k: v for k, v in os.environ.items() if k != "FLIPBENCH_DB"}
    env["COLUMNS"] = str(columns)
    return subprocess.run(
        [str(FLIPBENCH), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for a directory)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2 and exactly one non-empty `error: …` line on stderr, no traceback."""
    report = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 2, report
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, report
    assert lines[0].startswith("error:"), report
    assert lines[0].removeprefix("error:").strip(), report
    assert "Traceback" not in proc.stderr + proc.stdout, report
    assert proc.stdout == "", report
    return lines[0]


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    report = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert "Traceback" not in proc.stderr + proc.stdout, report
