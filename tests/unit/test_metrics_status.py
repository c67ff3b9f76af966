"""The status table and the metrics history, built from files alone."""

import json
import os
import time

import pandas as pd
import pytest

from adaptive_snakemake import load_metrics, status
from adaptive_snakemake.layout import metrics_file, status_file
from adaptive_snakemake.metrics.record import encode_record
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.metrics.status import StatusReader, main_status, render
from adaptive_snakemake.plan import write_plan
from adaptive_snakemake.results.result import Result


def record(name, t, status="running", **changes):
    values = {
        "v": 1,
        "name": name,
        "attempt": 1,
        "job_id": "7",
        "host": "node1",
        "pid": 11,
        "t": t,
        "elapsed": 5.0,
        "npoints": 50,
        "loss": 0.1,
        "rate": 10.0,
        "cpu": 95.0,
        "rss_mb": 100.0,
        "status": status,
        "interval": 10.0,
    }
    values.update(changes)
    return values


def write_log(workdir, name, records, noise=True):
    path = workdir / "logs" / "learners" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        for r in records:
            if noise:
                f.write(b"INFO some job output {not json\n")
            f.write(encode_record(r) + b"\n")
    return path


def write_result(workdir, name, mtime=None, **values):
    path = workdir / "results" / name / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(
        name=name,
        sweep=name.split("/")[0],
        learner="Learner1D",
        learner_kwargs={"bounds": [-1, 1]},
        params={},
        npoints=200,
        loss=0.01,
        elapsed=60.0,
        goal={"npoints": 200},
        reached="npoints",
        attempts=2,
        restored_npoints=0,
        fingerprint="0" * 16,
    )
    data.update(values)
    Result(**data).write(path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_states_from_job_logs_without_collector(tmp_path):
    now = time.time()
    write_log(tmp_path, "s/a~1", [record("s/a~1", now - 100), record("s/a~1", now - 2)])
    write_log(tmp_path, "s/a~2", [record("s/a~2", now - 100)])  # silent for > 3 x 10 s
    write_log(tmp_path, "s/a~3", [record("s/a~3", now - 50, "failed", attempt=3)])
    write_log(tmp_path, "s/a~4", [record("s/a~4", now - 500, "done")])
    write_result(tmp_path, "s/a~4", mtime=now - 400)
    write_result(tmp_path, "s/a~5", mtime=now - 400)  # done, log gone
    write_log(tmp_path, "s/a~6", [record("s/a~6", now - 1, npoints=300)])  # runs again
    write_result(tmp_path, "s/a~6", mtime=now - 400)
    names = [f"s/a~{i}" for i in range(1, 8)]
    table = status(tmp_path, names=names).set_index("name")
    assert table["state"].to_dict() == {
        "s/a~1": "running",
        "s/a~2": "stale",
        "s/a~3": "failed",
        "s/a~4": "done",
        "s/a~5": "done",
        "s/a~6": "running",
        "s/a~7": "pending",
    }
    assert table.loc["s/a~4", "npoints"] == 200 and table.loc["s/a~4", "attempts"] == 2
    assert pd.isna(table.loc["s/a~4", "cpu"])
    assert table.loc["s/a~3", "attempts"] == 3
    assert table.loc["s/a~6", "npoints"] == 300
    assert pd.isna(table.loc["s/a~7", "npoints"])
    # Sorted: problems first, then running, pending, done.
    assert list(status(tmp_path, names=names)["state"])[:2] == ["stale", "failed"]


def test_collector_status_file_is_used_while_collector_lives(tmp_path, monkeypatch):
    import adaptive_snakemake.metrics.status as status_module

    now = time.time()
    write_log(tmp_path, "x", [record("x", now - 1000)])  # an old log line
    fresh = record("x", now - 1, npoints=77)
    status_file(tmp_path).parent.mkdir(parents=True)
    entry = {"state": "running", "last_seen": now - 1, "interval": 10.0, "records": 3}
    status_file(tmp_path).write_text(
        json.dumps(
            {
                "v": 1,
                "updated": now,
                "stale_intervals": 3,
                "collector": {"pid": 1, "endpoint": "tcp://h:1", "stored": 3, "dropped": {}},
                "learners": {"x": {**entry, "record": fresh}},
            }
        )
    )
    monkeypatch.setattr(status_module, "running_collector", lambda workdir: {"pid": 1})
    reader = StatusReader(tmp_path)
    table = reader.table()
    assert reader.source == "collector"
    assert table.loc[0, "npoints"] == 77 and table.loc[0, "state"] == "running"
    assert "collector pid 1" in str(render(table, reader, now).renderables[0])


def test_load_metrics_prefers_collector_file_and_falls_back_to_logs(tmp_path):
    now = time.time()
    write_log(tmp_path, "a", [record("a", now - 3), record("a", now - 1)])
    write_log(tmp_path, "sub/b", [record("sub/b", now - 2)])
    frame = load_metrics(tmp_path)
    assert list(frame["name"]) == ["a", "sub/b", "a"]  # all logs, ordered by time
    assert frame["time"].dt.tz is not None
    metrics_file(tmp_path).write_bytes(
        encode_record(record("c", now)) + b"\n" + b'{"v": 1, "torn'  # killed mid-write
    )
    assert list(load_metrics(tmp_path)["name"]) == ["c"]
    assert list(load_metrics(tmp_path, source="logs")["name"]) == ["a", "sub/b", "a"]
    empty = load_metrics(tmp_path / "nothing")
    assert empty.empty and "npoints" in empty.columns
    with pytest.raises(ValueError):
        load_metrics(tmp_path, source="elsewhere")


def test_command_line(tmp_path, capsys):
    now = time.time()
    write_log(tmp_path, "a", [record("a", now)])
    write_result(tmp_path, "b")
    assert main_status(["--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 learners: 1 running, 1 done" in out and "collector not running" in out
    assert main_status(["-d", str(tmp_path), "--json", "--state", "done"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["b"]
    with pytest.raises(SystemExit):
        main_status(["-d", str(tmp_path), "--state", "sleeping"])


def test_planned_learners_show_as_pending_also_with_a_relative_workdir(tmp_path, monkeypatch):
    """The plan the workflow writes at start lists every learner; `status -d REL` from
    another directory must not drop the pending ones (it used to join, then chdir)."""
    workdir = tmp_path / "wf"
    write_result(workdir, "s/a~1")
    write_plan(workdir, ["s/a~1", "s/a~2", "s/a~3"], MonitorSettings())
    monkeypatch.chdir(tmp_path)
    rows = {r["name"]: r["state"] for r in json.loads(capsys_out(main_status, "wf"))}
    assert rows == {"s/a~1": "done", "s/a~2": "pending", "s/a~3": "pending"}
    table = status("wf")
    assert sorted(table["name"]) == ["s/a~1", "s/a~2", "s/a~3"]


def capsys_out(command, workdir):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        command(["-d", workdir, "--json"])
    return out.getvalue()


def test_failed_learner_shows_its_error(tmp_path):
    now = time.time()
    write_log(tmp_path, "s/a~3", [record("s/a~3", now - 5, "failed")])
    failure = tmp_path / "state" / "s" / "a~3.failed.json"
    failure.parent.mkdir(parents=True)
    failure.write_text(json.dumps({"error": "ValueError: bug in f", "traceback": "..."}))
    table = status(tmp_path, names=["s/a~3"]).set_index("name")
    assert table.loc["s/a~3", "error"] == "ValueError: bug in f"
    reader = StatusReader(tmp_path, ["s/a~3"])
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render(reader.table(), reader, now))
    assert "s/a~3: ValueError: bug in f" in console.export_text()
