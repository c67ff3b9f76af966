"""Progress per sweep in `status`, the view at 10,000 learners, and `status --watch` in a
real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pandas as pd
from rich.console import Console

from adaptive_snakemake import status
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.metrics.status import StatusReader, render, sweep_progress
from adaptive_snakemake.plan import write_plan
from tests.unit.test_metrics_status import record, write_log, write_result


def _workflow(tmp_path, now):
    """Sweep s: 1 done, 2 running (10 points/s each), 1 stale, 1 failed, 3 pending; goal 200."""
    names = [f"s/a~{i}" for i in range(8)]
    write_plan(tmp_path, names, MonitorSettings())
    write_result(tmp_path, "s/a~0", params={"a": 0})
    write_log(tmp_path, "s/a~1", [record("s/a~1", now - 1, npoints=100)])
    write_log(tmp_path, "s/a~2", [record("s/a~2", now - 1, npoints=100)])
    write_log(tmp_path, "s/a~3", [record("s/a~3", now - 500, npoints=20)])
    log = write_log(tmp_path, "s/a~4", [record("s/a~4", now - 5, "failed", npoints=30)])
    with open(log, "a") as f:
        f.write("Traceback (most recent call last):\nValueError: bug in f\n")
    return names


def test_progress_per_sweep_with_an_eta_from_the_observed_rate(tmp_path):
    now = time.time()
    _workflow(tmp_path, now)
    reader = StatusReader(tmp_path)
    progress = sweep_progress(reader.table(now), reader, now)
    row = progress.set_index("sweep").loc["s"]
    assert (row.learners, row.done, row.running, row.stale, row.failed, row.pending) == (
        8,
        1,
        2,
        1,
        1,
        3,
    )
    assert row.goal_npoints == 8 * 200
    assert row.npoints == 200 + 100 + 100 + 20 + 30
    # remaining: 100 + 100 (running) + 180 (stale) + 3 x 200 (pending) at 20 points/s
    assert row.rate == 20.0 and abs(row.eta_s - 980 / 20) < 1e-6


def test_notebook_status_has_datetimes_and_sweep_progress(tmp_path):
    now = time.time()
    _workflow(tmp_path, now)
    frame = status(tmp_path)
    assert isinstance(frame["last_seen"].dtype, pd.DatetimeTZDtype)
    seen = frame.set_index("name").loc["s/a~1", "last_seen"]
    assert abs(seen.timestamp() - (now - 1)) < 1
    assert set(frame["sweep"]) == {"s"}
    sweeps = frame.attrs["sweeps"]
    assert list(sweeps["sweep"]) == ["s"] and isinstance(sweeps.loc[0, "eta"], pd.Timestamp)


def test_view_shows_bars_and_the_logs_of_failed_and_stale_learners(tmp_path):
    now = time.time()
    _workflow(tmp_path, now)
    reader = StatusReader(tmp_path)
    console = Console(width=140, record=True, color_system=None)
    console.print(
        render(reader.table(now), reader, now, limit=4, width=140, bars=True, log_lines=2)
    )
    text = console.export_text()
    lines = text.splitlines()
    assert lines[1].startswith("s ") and "1/8 done" in lines[1] and "ETA" in lines[1]
    assert "450/1,600 points" in lines[1]
    # The interesting rows: stale, failed, then the running ones; the rest summarized.
    table = text[text.index("Learner") :]
    assert table.index("s/a~3") < table.index("s/a~4") < table.index("s/a~1")
    assert "s/a~0" not in table.split("...")[0]
    assert "4 more (3 pending, 1 done; use --state)" in text
    assert "ValueError: bug in f" in text


def test_ten_thousand_learners_stay_readable(tmp_path):
    now = time.time()
    names = [f"big/i~{i}" for i in range(10_000)]
    states = ["running"] * 200 + ["failed"] * 3 + ["pending"] * 5_000 + ["done"] * 4_797
    frame = pd.DataFrame(
        {
            "name": names,
            "state": states,
            "npoints": [50] * 10_000,
            "loss": [0.1] * 10_000,
            "rate": [float(1 + i % 7) for i in range(10_000)],
            "cpu": 90.0,
            "rss_mb": 100.0,
            "attempts": 1,
            "host": "n",
            "job_id": "1",
            "elapsed": 1.0,
            "last_seen": now,
            "error": None,
        }
    )
    reader = StatusReader(tmp_path)
    console = Console(width=120, record=True, color_system=None)
    started = time.perf_counter()
    console.print(render(frame, reader, now, limit=30, width=120, bars=True))
    assert time.perf_counter() - started < 10  # generous: the machine is shared
    text = console.export_text()
    assert len(text.splitlines()) < 45
    assert "4,797/10,000 done" in text and "3 failed" in text
    # failed first, then the slowest running learners (rate 1/s)
    rows = [line for line in text.splitlines() if line.startswith("big/")]
    assert [r.split()[1] for r in rows[:3]] == ["failed"] * 3
    assert all(r.split()[1] == "running" and " 1/s" in r for r in rows[3:10])


def test_watch_in_a_pseudo_terminal_shows_bars_and_ends_cleanly_on_ctrl_c(tmp_path):
    now = time.time()
    _workflow(tmp_path, now)
    pid, fd = pty.fork()
    if pid == 0:  # the child: status --watch on the terminal
        os.environ.update(COLUMNS="120", LINES="40", TERM="xterm-256color")
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "adaptive_snakemake.cli",
                "status",
                "--watch",
                "-n",
                "0.5",
                "-d",
                str(tmp_path),
            ],
        )
    output = b""
    deadline = time.time() + 60
    while time.time() < deadline and b"ETA" not in output:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            output += os.read(fd, 65536)
    time.sleep(1.5)  # a few refreshes
    while select.select([fd], [], [], 0.2)[0]:
        output += os.read(fd, 65536)
    os.kill(pid, signal.SIGINT)  # Ctrl-C
    deadline = time.time() + 30
    status_code = None
    while time.time() < deadline:
        try:
            while select.select([fd], [], [], 0.2)[0]:
                output += os.read(fd, 65536)
        except OSError:
            pass
        done, status_code = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("status --watch did not end on Ctrl-C")
    text = output.decode("utf-8", "replace")
    assert os.WIFEXITED(status_code) and os.WEXITSTATUS(status_code) == 0, text[-2000:]
    assert "█" in text and "1/8 done" in text and "ETA" in text
    # No traceback of its own (the failed learner's log tail has one), the cursor restored.
    assert "KeyboardInterrupt" not in text and 'File "' not in text
    assert text.rstrip().endswith("\x1b[?25h")
    os.close(fd)


def test_status_command_without_a_terminal_prints_bars(tmp_path):
    _workflow(tmp_path, time.time())
    result = subprocess.run(
        [sys.executable, "-m", "adaptive_snakemake.cli", "status", "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "1/8 done" in result.stdout and "s/a~4" in result.stdout
