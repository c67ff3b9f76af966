"""qsub line building for every flavour, the job script's exit marker, flavour detection."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from snakemake_executor_plugin_pbs.files import PbsDir, atomic_write_text, read_marker
from snakemake_executor_plugin_pbs.flavour import FlavourError, detect_flavour
from snakemake_executor_plugin_pbs.submit import (
    JobRequest,
    SubmitError,
    format_walltime,
    job_name,
    job_script,
    parse_job_id,
    qsub_argv,
    readable_name,
    request_from_properties,
)

LEARNER_PROPS = {
    "type": "single",
    "rule": "learner",
    "local": False,
    "wildcards": {"name": "h/pow~0/a~0.1"},
    "threads": 1,
    "resources": {
        "mem_mb": 2000,
        "mem_mib": 1908,
        "disk_mb": 1000,
        "tmpdir": "<TBD>",
        "runtime": 90,
        "mpi": "mpiexec",
        "tasks": 3,
    },
    "jobid": 7,
}


def jobscript(path: Path, props: dict, body: str = "exit 0") -> Path:
    path.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\n{body}\n")
    return path


def test_request_from_learner_properties():
    req = request_from_properties(LEARNER_PROPS, queue="workq")
    assert req == JobRequest(
        name="learner.h_pow~0_a~0.1",
        ncpus=3,
        mpiprocs=3,
        mem_mb=2000,
        runtime_min=90,
        queue="workq",
        account=None,
    )


def test_request_threads_and_cpus_per_task():
    props = {"rule": "fit", "threads": 8, "resources": {"tasks": 2, "cpus_per_task": 2}}
    req = request_from_properties(props)
    assert (req.ncpus, req.mpiprocs, req.mem_mb, req.runtime_min) == (8, 2, None, None)
    assert request_from_properties({"rule": "x", "threads": 4}).mpiprocs == 1


def test_per_rule_resources_override_the_profile():
    props = {
        "rule": "big",
        "resources": {"pbs_queue": "long", "pbs_account": "proj", "pbs_extra": "-m n -W x=y"},
    }
    req = request_from_properties(props, queue="workq", account="other", extra=("-p", "5"))
    assert (req.queue, req.account, req.extra) == (
        "long",
        "proj",
        ("-p", "5", "-m", "n", "-W", "x=y"),
    )


def test_pbspro_qsub_line():
    req = request_from_properties(LEARNER_PROPS, queue="workq", account="acct")
    argv = qsub_argv("pbspro", req, "/s/job.sh", "/w/logs/pbs/x.log")
    assert argv == [
        "qsub",
        "-N",
        "learner.h_pow-0_a-0.1",
        "-V",
        "-j",
        "oe",
        "-o",
        "/w/logs/pbs/x.log",
        "-l",
        "select=1:ncpus=3:mpiprocs=3:mem=2000mb",
        "-l",
        "walltime=01:30:00",
        "-q",
        "workq",
        "-A",
        "acct",
        "/s/job.sh",
    ]


def test_torque_qsub_line():
    req = request_from_properties(LEARNER_PROPS)
    argv = qsub_argv("torque", req, "/s/job.sh", "/w/x.log")
    # One -l: the slurm wrapper keeps only the last -l it is given.
    assert argv.count("-l") == 1
    assert argv[argv.index("-l") + 1] == "nodes=1:ppn=3,mem=2000mb,walltime=01:30:00"
    assert "-q" not in argv and "-A" not in argv
    name = argv[argv.index("-N") + 1]
    assert len(name) <= 15 and name[0].isalnum()
    assert qsub_argv("slurm-torque", req, "/s/job.sh", "/w/x.log")[1:] == argv[1:]


def test_slurm_wrapper_gets_extra_resources_merged_into_its_one_resource_list():
    req = request_from_properties(LEARNER_PROPS, extra=("-m", "n", "-l", "gres=x", "-lother=y"))
    argv = qsub_argv("slurm-torque", req, "/s/job.sh", "/w/x.log")
    assert argv.count("-l") == 1
    assert argv[argv.index("-l") + 1] == (
        "nodes=1:ppn=3,mem=2000mb,walltime=01:30:00,gres=x,other=y"
    )
    assert argv[-3:] == ["-m", "n", "/s/job.sh"]
    torque = qsub_argv("torque", req, "/s/job.sh", "/w/x.log")  # real Torque: many -l are fine
    assert torque[-6:] == ["-m", "n", "-l", "gres=x", "-lother=y", "/s/job.sh"]


def test_no_memory_no_walltime_no_queue():
    req = request_from_properties({"rule": "r", "threads": 2})
    argv = qsub_argv("pbspro", req, "s.sh", "l.log")
    assert "select=1:ncpus=2:mpiprocs=1" in argv
    assert not any(a.startswith("walltime") for a in argv)
    argv = qsub_argv("torque", req, "s.sh", "l.log")
    assert "nodes=1:ppn=2" in argv


def test_extra_args_go_before_the_script():
    req = request_from_properties({"rule": "r"}, extra=("-m", "abe"))
    argv = qsub_argv("pbspro", req, "s.sh", "l.log")
    assert argv[-3:] == ["-m", "abe", "s.sh"]


@pytest.mark.parametrize(
    "minutes, text",
    [
        (1, "00:01:00"),
        (60, "01:00:00"),
        (90, "01:30:00"),
        (0.5, "00:00:30"),
        (1.01, "00:01:01"),  # rounded up: never ask for less than the rule wants
        (1500, "25:00:00"),  # hours beyond a day are fine for PBS
        (7 * 24 * 60, "168:00:00"),
    ],
)
def test_format_walltime(minutes, text):
    assert format_walltime(minutes) == text


def test_job_name_truncation_is_safe_and_distinct():
    a = "learner.h_pow~0_a~0.1"
    b = "learner.h_pow~0_a~0.5"
    assert job_name(a, 236) == "learner.h_pow-0_a-0.1"
    assert job_name(a, 15) == "h_pow-0_a-0.1"  # the rule goes first
    long_a, long_b = a.replace("h_", "hyperbolic_"), b.replace("h_", "hyperbolic_")
    na, nb = job_name(long_a, 15), job_name(long_b, 15)
    assert len(na) <= 15 and len(nb) <= 15 and na != nb
    assert na.startswith("hyperbolic")
    assert all(c.isalnum() or c in "_.-" for c in na + nb)
    assert job_name(long_a, 15) == na  # stable
    assert len(job_name(a, 4)) == 4 and job_name(a, 4)[0].isalpha()
    assert job_name("1x", 15) == "j1x"  # Torque: the first character must be a letter


@pytest.mark.parametrize(
    "props, name",
    [
        (LEARNER_PROPS, "learner.h_pow~0_a~0.1"),
        ({"rule": "summary", "wildcards": {}}, "summary"),
        ({"type": "group", "groupid": "g1"}, "g1"),
        ({"rule": "_hidden", "wildcards": {"x": "a b/c"}}, "hidden.a_b_c"),
        ({"rule": "r", "wildcards": {"x": "-1"}}, "r.-1"),
        ({"rule": "1st", "wildcards": {}}, "1st"),
    ],
)
def test_readable_name(props, name):
    assert readable_name(props) == name


def test_parse_job_id():
    assert parse_job_id("1234.pbs01\n") == "1234.pbs01"
    assert parse_job_id("warning: option -S is ignored\n567\n") == "567"
    assert parse_job_id("89.torque01.example.org") == "89.torque01.example.org"
    with pytest.raises(SubmitError):
        parse_job_id("qsub: Unknown queue\n")


@pytest.mark.parametrize("code", [0, 1, 3])
def test_wrapped_jobscript_writes_its_exit_code(tmp_path, code):
    original = jobscript(tmp_path / "j.sh", LEARNER_PROPS, f"echo hello && exit {code}")
    marker = tmp_path / "exit dir" / "tok'en"  # quoting must hold
    marker.parent.mkdir()
    wrapped = tmp_path / "w.sh"
    wrapped.write_text(job_script(original.read_text(), marker))
    assert wrapped.read_text().startswith("#!/bin/sh\n")
    assert "# properties = " in wrapped.read_text()  # still a snakemake jobscript
    proc = subprocess.run(["/bin/sh", str(wrapped)], capture_output=True, text=True)
    assert proc.returncode == code and proc.stdout == "hello\n"
    assert read_marker(marker) == code


def test_killed_job_writes_no_marker(tmp_path):
    marker = tmp_path / "m"
    wrapped = tmp_path / "w.sh"
    wrapped.write_text(job_script("#!/bin/sh\nsleep 30\n", marker))
    proc = subprocess.Popen(["/bin/sh", str(wrapped)])
    try:
        proc.wait(timeout=0.3)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait()
    assert not marker.exists()


def test_marker_directory_reads_only_whole_markers(tmp_path):
    pbs_dir = PbsDir(tmp_path / "pbs").ensure()
    atomic_write_text(pbs_dir.marker("a"), "0\n")
    atomic_write_text(pbs_dir.marker("b"), "3\n")
    pbs_dir.marker("c").write_text("")  # being written (not by us: we rename into place)
    assert pbs_dir.read_markers({"a", "b", "c", "d"}) == {"a": 0, "b": 3}
    assert pbs_dir.read_markers(set()) == {}
    os.utime(pbs_dir.marker("a"), (0, 0))
    pbs_dir.prune_markers(now=8 * 86400)
    assert sorted(p.name for p in pbs_dir.exit_dir.iterdir()) == ["b", "c"]


def test_event_log_lines_and_rotation(tmp_path):
    pbs_dir = PbsDir(tmp_path / "pbs").ensure()
    pbs_dir.log_event("qsub", job_id="1.s", log=tmp_path / "x.log")
    pbs_dir.log_event("status", njobs=1, decided={"1.s": ["success", "qstat: exit status 0"]})
    lines = [json.loads(line) for line in pbs_dir.events.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["qsub", "status"]
    assert lines[0]["log"] == str(tmp_path / "x.log")
    pbs_dir.rotate_events(max_bytes=10)
    assert not pbs_dir.events.exists() and pbs_dir.events.with_suffix(".jsonl.1").exists()


@pytest.mark.parametrize(
    "script, flavour",
    [
        ("#!/bin/sh\necho 'pbs_version = 22.05.11'\n", "pbspro"),
        ("#!/bin/sh\necho 'Version: 6.1.3'\necho 'Commit: abc'\n", "torque"),
        ("#!/bin/sh\necho 'Unknown option: version' >&2\nexit 2\n", "slurm-torque"),
        (
            "#! /usr/bin/perl -w\n# qstat - queries slurm jobs in familar pbs format.\n",
            "slurm-torque",
        ),
        ("#!/bin/sh\necho 'something else'\n", "pbspro"),  # with a warning
    ],
)
def test_detect_flavour(tmp_path, monkeypatch, script, flavour):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qstat").write_text(script)
    (bin_dir / "qstat").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    detected, warning = detect_flavour()
    assert detected == flavour
    assert (warning is not None) == script.endswith("'something else'\n")
    if warning:
        assert "--pbs-flavour" in warning


def test_no_qstat_no_flavour(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FlavourError, match="qstat not found"):
        detect_flavour()
