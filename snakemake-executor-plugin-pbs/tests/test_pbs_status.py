"""The decision rules: scheduler state, exit status, exit marker, grace periods."""

import pytest
from snakemake_executor_plugin_pbs.qstat import JobState
from snakemake_executor_plugin_pbs.status import (
    FAILED,
    RUNNING,
    SUCCESS,
    JobRecord,
    decide,
    explain_exit,
)

GRACE = 60.0


def record(**kw):
    return JobRecord("5.s", token="t", submitted=0.0, **kw)


@pytest.mark.parametrize("state", list("QRHWSTUBEM"))
def test_active_states_are_running_even_with_a_marker(state):
    # The scheduler still holds the job (E: cleaning up; it may also be requeued).
    r = decide(record(), JobState("5.s", state), marker=0, now=1.0)
    assert r.status == RUNNING and r.last_seen == 1.0 and r.state == state


@pytest.mark.parametrize("code, status", [(0, SUCCESS), (1, FAILED), (271, FAILED), (-29, FAILED)])
def test_exit_status_from_qstat_decides_and_beats_the_marker(code, status):
    r = decide(record(), JobState("5.s", "F", code), marker=0, now=1.0)
    assert (r.status, r.exit_status, r.decided) == (status, code, 1.0)


def test_finished_without_exit_status_uses_the_marker():
    assert decide(record(), JobState("5.s", "C"), marker=0, now=1.0).status == SUCCESS
    assert decide(record(), JobState("5.s", "C"), marker=2, now=1.0).status == FAILED


def test_finished_without_exit_status_nor_marker_fails_after_grace():
    r = decide(record(), JobState("5.s", "C"), None, now=100.0, grace=GRACE)
    assert r.status == RUNNING and r.finished_seen == 100.0
    r = decide(r, JobState("5.s", "C"), None, now=159.0, grace=GRACE)
    assert r.status == RUNNING
    r = decide(r, JobState("5.s", "C"), None, now=160.0, grace=GRACE)
    assert r.status == FAILED and "no exit marker" in r.reason


def test_marker_arriving_within_grace_wins():
    r = decide(record(), JobState("5.s", "C"), None, now=100.0, grace=GRACE)
    r = decide(r, JobState("5.s", "C"), 0, now=130.0, grace=GRACE)
    assert r.status == SUCCESS


def test_forgotten_job_with_marker():
    assert decide(record(), None, marker=0, now=1000.0).status == SUCCESS
    assert decide(record(), None, marker=1, now=1000.0).status == FAILED


def test_forgotten_job_without_marker_fails_after_grace_since_last_seen():
    seen = decide(record(), JobState("5.s", "R"), None, now=500.0)
    assert decide(seen, None, None, now=559.0, grace=GRACE).status == RUNNING
    gone = decide(seen, None, None, now=560.0, grace=GRACE)
    assert gone.status == FAILED and "unknown to the scheduler" in gone.reason


def test_never_seen_job_gets_grace_from_submission():
    fresh = JobRecord("9.s", submitted=1000.0)
    assert decide(fresh, None, None, now=1010.0, grace=GRACE).status == RUNNING
    assert decide(fresh, None, None, now=1061.0, grace=GRACE).status == FAILED


def test_decided_is_final():
    done = decide(record(), JobState("5.s", "F", 0), None, now=1.0)
    assert decide(done, JobState("5.s", "R"), None, now=2.0) is done
    assert decide(done, None, None, now=10_000.0) is done


def test_unrecognised_state_is_not_a_verdict():
    r = decide(record(), JobState("5.s", "Z"), None, now=1.0)
    assert r.status == RUNNING and "unrecognised" in r.reason


@pytest.mark.parametrize(
    "code, flavour, words",
    [
        (0, "pbspro", "exit status 0"),
        (1, "pbspro", "exit status 1"),
        (137, "pbspro", "died of signal 9"),
        (271, "pbspro", "killed by signal 15"),
        (265, "torque", "killed by signal 9"),
        (-29, "pbspro", "KILL_WALLTIME"),
        (-27, "pbspro", "KILL_MEM"),
        (-11, "torque", "walltime"),
        (-10, "torque", "memory"),
        (-99, "pbspro", "set by PBS"),
    ],
)
def test_explain_exit(code, flavour, words):
    assert words in explain_exit(code, flavour)
