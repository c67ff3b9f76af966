"""qstat parsers on every sample format, and what a qstat answer proves."""

from pathlib import Path

import pytest
from snakemake_executor_plugin_pbs.qstat import (
    interpret,
    lookup,
    parse_pbspro_json,
    parse_qstat_output,
    parse_qstat_text,
    parse_torque_xml,
    qstat_argv,
)
from snakemake_executor_plugin_pbs.status import FAILED, RUNNING, SUCCESS, JobRecord, decide

DATA = Path(__file__).resolve().parent / "data" / "samples"
WRAPPER_DATA = Path(__file__).resolve().parent / "data" / "torque-wrapper"


def states(jobs):
    return {job_id.split(".")[0]: (j.state, j.exit_status) for job_id, j in jobs.items()}


PBSPRO_EXPECTED = {
    "1001": ("R", None),
    "1002": ("Q", None),
    "1003": ("F", 0),
    "1004": ("F", 1),
    "1005": ("F", 271),
    "1006": ("F", -29),
    "1007": ("H", None),
    "1009": ("F", None),
    "1010": ("E", 0),
}


def test_pbspro_json_sample():
    jobs = parse_pbspro_json((DATA / "pbspro-qstat-fx.json").read_text())
    assert states(jobs) == PBSPRO_EXPECTED
    assert "1003.pbs01" in jobs  # keys are the full ids qsub printed
    assert jobs["1002.pbs01"].comment.startswith("Not Running")


def test_pbspro_invalid_json_is_still_read():
    text = (DATA / "pbspro-qstat-fx-invalid.json").read_text()
    assert states(parse_qstat_output(text)) == PBSPRO_EXPECTED


def test_pbspro_one_json_document_per_id_is_read():
    # Older qstat versions printed one document per job id operand: not valid JSON.
    text = (
        '{"pbs_server":"s","Jobs":{"1.s":{"job_state":"R"}}}\n'
        '{"pbs_server":"s","Jobs":{"2.s":{"job_state":"F","Exit_status":0}}}\n'
    )
    assert states(parse_qstat_output(text)) == {"1": ("R", None), "2": ("F", 0)}


def test_pbspro_text_sample():
    jobs = parse_qstat_text((DATA / "pbspro-qstat-fx.txt").read_text())
    assert states(jobs) == PBSPRO_EXPECTED


def test_torque_xml_sample():
    jobs = parse_torque_xml((DATA / "torque-qstat-fx.xml").read_text())
    assert states(jobs) == {
        "2001": ("R", None),
        "2002": ("Q", None),
        "2003": ("C", 0),
        "2004": ("C", 1),
        "2005": ("C", 271),
        "2006": ("C", -11),
        "2007": ("H", None),
        "2010": ("E", 0),
    }
    assert "2001.torque01.example.org" in jobs


def test_torque_xml_without_declaration_and_with_two_data_blocks():
    text = (
        "<Data><Job><Job_Id>1.a</Job_Id><job_state>R</job_state></Job></Data>\n"
        "<Data><Job><Job_Id>2.b</Job_Id><job_state>C</job_state>"
        "<exit_status>0</exit_status></Job></Data>"
    )
    assert states(parse_qstat_output(text)) == {"1": ("R", None), "2": ("C", 0)}


def test_broken_xml_falls_back_to_a_scan():
    text = "<Data><Job><Job_Id>7.x</Job_Id><job_state>C</job_state><exit_status>3</exit_status>"
    assert states(parse_qstat_output(text)) == {"7": ("C", 3)}


def test_slurm_wrapper_text_sample_has_no_exit_status():
    jobs = parse_qstat_text((DATA / "slurm-torque-qstat-f.txt").read_text())
    assert states(jobs) == {
        "3001": ("R", None),
        "3002": ("Q", None),
        "3003": ("C", None),
        "3004": ("C", None),
        "3005": ("C", None),
        "3006": ("C", None),
    }


def wrapper_sample(name):
    """stdout, stderr, rc of a real capture from the slurm-wlm-torque test cluster."""
    base = WRAPPER_DATA / name
    if not base.with_name(f"{name}.stdout").exists():
        pytest.skip(f"no capture {name} in {WRAPPER_DATA}")
    read = lambda ext: base.with_name(f"{name}.{ext}").read_text()  # noqa: E731
    return read("stdout"), read("stderr"), int(read("rc").strip())


@pytest.mark.parametrize(
    "sample, job_id, state",
    [
        ("queued.qstat-f", "15", "Q"),
        ("running.qstat-f", "11", "R"),
        ("completed.qstat-f", "10", "C"),
        ("completed-no-walltime.qstat-f", "5", "C"),
        ("failed.qstat-f", "13", "C"),
        ("cancelled.qstat-f", "12", "C"),
        ("timeout.qstat-f", "16", "C"),
    ],
)
def test_real_wrapper_captures(sample, job_id, state):
    stdout, stderr, rc = wrapper_sample(sample)
    result = interpret(rc, stdout, stderr)
    assert result.ok
    assert {k: (j.state, j.exit_status) for k, j in result.jobs.items()} == {job_id: (state, None)}


@pytest.mark.parametrize("sample", ["purged.qstat-f", "unknown.qstat-f"])
def test_real_wrapper_forgotten_job_is_a_trustworthy_absence(sample):
    stdout, stderr, rc = wrapper_sample(sample)
    result = interpret(rc, stdout, stderr)
    assert result.ok and result.jobs == {} and rc == 153


def test_real_wrapper_rejects_dash_x():
    stdout, stderr, rc = wrapper_sample("running.qstat-f-x")
    result = interpret(rc, stdout, stderr)
    assert not result.ok and "Unknown option" in stderr  # hence qstat_argv has no -x for it


@pytest.mark.parametrize(
    "sample, marker, expected",
    [
        ("completed.qstat-f", 0, SUCCESS),
        ("failed.qstat-f", 1, FAILED),  # snakemake's jobscript turns any failure into 1
        ("cancelled.qstat-f", None, RUNNING),  # killed: no marker; failed once grace is over
        ("timeout.qstat-f", None, RUNNING),
        ("running.qstat-f", 0, RUNNING),  # the scheduler still has it: marker not read
    ],
)
def test_real_wrapper_captures_through_the_decision(sample, marker, expected):
    stdout, stderr, rc = wrapper_sample(sample)
    ((job_id, job),) = interpret(rc, stdout, stderr).jobs.items()
    record = decide(
        JobRecord(job_id, token="t"), job, marker, now=100.0, grace=60, flavour="slurm-torque"
    )
    assert record.status == expected
    if expected == RUNNING and job.finished:
        later = decide(record, job, None, now=160.0, grace=60, flavour="slurm-torque")
        assert later.status == FAILED


@pytest.mark.parametrize("text", ["", "   \n", "\n\n"])
def test_empty_output_has_no_jobs(text):
    assert parse_qstat_output(text) == {}


def test_pbspro_json_without_jobs_key():
    assert parse_qstat_output('{"timestamp":1,"pbs_version":"22","pbs_server":"s"}') == {}


# What each sample means, through the decision rules ---------------------------------------


@pytest.mark.parametrize(
    "sample, expected",
    [
        (
            "pbspro-qstat-fx.json",
            {
                "1001": RUNNING,
                "1002": RUNNING,
                "1003": SUCCESS,
                "1004": FAILED,
                "1005": FAILED,
                "1006": FAILED,
                "1007": RUNNING,
                "1009": RUNNING,  # finished, no exit status: waits for the marker / grace
                "1010": RUNNING,  # E: exiting, not final yet
            },
        ),
        (
            "torque-qstat-fx.xml",
            {
                "2001": RUNNING,
                "2002": RUNNING,
                "2003": SUCCESS,
                "2004": FAILED,
                "2005": FAILED,
                "2006": FAILED,
                "2007": RUNNING,
                "2010": RUNNING,
            },
        ),
    ],
)
def test_samples_map_to_snakemake_statuses(sample, expected):
    jobs = parse_qstat_output((DATA / sample).read_text())
    got = {
        job_id.split(".")[0]: decide(JobRecord(job_id, submitted=0.0), job, None, now=10.0).status
        for job_id, job in jobs.items()
    }
    assert got == expected


def test_walltime_and_qdel_reasons_are_explained():
    jobs = parse_qstat_output((DATA / "pbspro-qstat-fx.json").read_text())
    walltime = decide(JobRecord("1006.pbs01"), jobs["1006.pbs01"], None, now=1.0)
    assert "JOB_EXEC_KILL_WALLTIME" in walltime.reason
    qdel = decide(JobRecord("1005.pbs01"), jobs["1005.pbs01"], None, now=1.0)
    assert "signal 15" in qdel.reason
    torque = parse_qstat_output((DATA / "torque-qstat-fx.xml").read_text())
    record = decide(JobRecord("2006"), lookup(torque, "2006"), None, 1.0, flavour="torque")
    assert "walltime" in record.reason


# What a qstat answer proves about absent jobs ------------------------------------------------


def test_unknown_ids_on_stderr_make_a_trustworthy_answer():
    out = (DATA / "pbspro-qstat-fx.json").read_text()
    err = (DATA / "pbspro-qstat-fx.stderr").read_text()
    result = interpret(153, out, err)
    assert result.ok and "1008.pbs01" not in result.jobs


def test_all_ids_unknown_is_still_an_answer():
    assert interpret(153, "", "qstat: Unknown Job Id Error 2008.torque01\n").ok
    assert interpret(153, "", "").ok  # the slurm wrapper: nothing found, nothing said


@pytest.mark.parametrize(
    "rc, stderr, error",
    [
        (2, "qstat: cannot connect to server pbs01 (errno=111)", None),
        (255, "Problem loading jobs.\n", None),
        (None, "", "qstat did not answer within 60 s"),
    ],
)
def test_server_trouble_proves_nothing(rc, stderr, error):
    result = interpret(rc, "", stderr, error)
    assert not result.ok and result.error


def test_lookup_matches_on_the_sequence_number():
    jobs = parse_qstat_output((DATA / "torque-qstat-fx.xml").read_text())
    assert lookup(jobs, "2003.torque01").exit_status == 0  # qsub printed a shorter name
    assert lookup(jobs, "2003").state == "C"
    assert lookup(jobs, "2008.torque01") is None


def test_qstat_argv_per_flavour():
    assert qstat_argv("pbspro", ["1.s", "2.s"]) == ["qstat", "-f", "-x", "-F", "json", "1.s", "2.s"]
    assert qstat_argv("torque", ["1.s"]) == ["qstat", "-f", "-x", "1.s"]
    assert qstat_argv("slurm-torque", ["1"]) == ["qstat", "-f", "1"]
    with pytest.raises(ValueError):
        qstat_argv("sge", ["1"])
