"""From what qstat and the job's exit marker say to running|success|failed.

Rules, in order (``success`` always needs positive evidence):

1. A decided job stays decided (snakemake has acted on the answer).
2. qstat shows the job in an active state (Q R H W S T U B E M): running.
3. qstat shows it finished with an exit status: 0 is success, anything else failed.
4. qstat shows it finished without one (the slurm wrapper's ``C``; a PBS Pro job deleted
   before it ran): the exit marker decides; without a marker, failed once ``grace``
   seconds have passed since we first saw it finished.
5. qstat does not know the job (purged: PBS Pro without job history, Torque after
   keep_completed, the wrapper after MinJobAge): the marker decides; without one, failed
   once ``grace`` seconds have passed since the job was last seen (or submitted).

The marker is written by the job script's EXIT trap, so it exists whenever the script ran
to its end; a job killed by a signal (qdel, walltime) has none, and is rightly failed. The
grace period covers NFS: a marker written on a compute node may take up to the attribute
cache time (60 s by default) to appear on the login node.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .qstat import ACTIVE_STATES, JobState

RUNNING, SUCCESS, FAILED = "running", "success", "failed"
DEFAULT_GRACE = 120.0


@dataclass(frozen=True)
class JobRecord:
    """What we know about one submitted job; ``token`` names its exit marker."""

    job_id: str
    token: str | None = None
    name: str | None = None
    submitted: float | None = None
    status: str = RUNNING
    state: str | None = None  # last job_state qstat showed
    exit_status: int | None = None
    reason: str = "submitted"
    last_seen: float | None = None
    finished_seen: float | None = None
    decided: float | None = None

    @property
    def final(self) -> bool:
        return self.status != RUNNING


def decide(
    record: JobRecord,
    observed: JobState | None,
    marker: int | None,
    now: float,
    grace: float = DEFAULT_GRACE,
    flavour: str = "pbspro",
) -> JobRecord:
    if record.final:
        return record
    update = dataclasses.replace
    if observed is not None:
        record = update(record, state=observed.state, last_seen=now)
        if not observed.finished:
            reason = "active" if observed.state in ACTIVE_STATES else "unrecognised state"
            return update(record, reason=f"{reason} ({observed.state})")
        if observed.exit_status is not None:
            return _verdict(record, observed.exit_status, "qstat", now, flavour)
        if marker is not None:
            return _verdict(record, marker, "exit marker", now, flavour)
        since = record.finished_seen if record.finished_seen is not None else now
        record = update(record, finished_seen=since)
        if now - since >= grace:
            why = f"finished ({observed.state}) without exit status and no exit marker"
            return update(record, status=FAILED, reason=f"{why} after {grace:g} s", decided=now)
        return update(record, reason=f"finished ({observed.state}); waiting for exit marker")

    if marker is not None:
        return _verdict(record, marker, "exit marker", now, flavour)
    since = record.last_seen or record.submitted or now
    if now - since >= grace:
        why = "unknown to the scheduler and no exit marker"
        return update(record, status=FAILED, reason=f"{why} after {grace:g} s", decided=now)
    return update(record, reason="not in qstat output; waiting for exit marker")


def _verdict(record: JobRecord, code: int, source: str, now: float, flavour: str) -> JobRecord:
    status = SUCCESS if code == 0 else FAILED
    reason = f"{source}: {explain_exit(code, flavour)}"
    return dataclasses.replace(record, status=status, exit_status=code, reason=reason, decided=now)


# Negative exit statuses are set by the MOM, not the job (OpenPBS src/include/job.h;
# Torque 6.1.2 admin guide, "Job exit status"). -3, -13 and -14 make the server requeue the
# job: it shows Q or R again under the same id, which rule 2 reads as running.
PBSPRO_EXEC_CODES = {
    -1: "JOB_EXEC_FAIL1: exec failed before files, no retry",
    -2: "JOB_EXEC_FAIL2: exec failed after files, no retry",
    -3: "JOB_EXEC_RETRY: exec failed, retry",
    -4: "JOB_EXEC_INITABT: aborted on MOM initialisation",
    -5: "JOB_EXEC_INITRST: aborted on MOM init, checkpoint, no migrate",
    -6: "JOB_EXEC_INITRMG: aborted on MOM init, checkpoint, ok migrate",
    -7: "JOB_EXEC_BADRESRT: restart failed",
    -10: "JOB_EXEC_FAILUID: invalid uid/gid",
    -11: "JOB_EXEC_RERUN: job rerun",
    -12: "JOB_EXEC_CHKP: checkpointed and killed",
    -13: "JOB_EXEC_FAIL_PASSWORD: bad password",
    -14: "JOB_EXEC_RERUN_SIS_FAIL: rerun after sister failure",
    -15: "JOB_EXEC_QUERST: requeued for restart from checkpoint",
    -16: "JOB_EXEC_FAILHOOK_RERUN: hook rejected execution, requeued",
    -17: "JOB_EXEC_FAILHOOK_DELETE: hook rejected execution, deleted",
    -18: "JOB_EXEC_HOOK_RERUN: a hook requeued the job",
    -19: "JOB_EXEC_HOOK_DELETE: a hook deleted the job",
    -20: "JOB_EXEC_RERUN_MS_FAIL: mother superior connection failed",
    -21: "JOB_EXEC_FAIL_SECURITY: security breach in PBS directory",
    -22: "JOB_EXEC_HOOKERROR: hook error or timeout",
    -23: "JOB_EXEC_FAIL_KRB5: no kerberos credentials",
    -24: "JOB_EXEC_KILL_NCPUS_BURST: exceeded ncpus (burst)",
    -25: "JOB_EXEC_KILL_NCPUS_SUM: exceeded ncpus (sum)",
    -26: "JOB_EXEC_KILL_VMEM: exceeded vmem",
    -27: "JOB_EXEC_KILL_MEM: exceeded mem",
    -28: "JOB_EXEC_KILL_CPUT: exceeded cput",
    -29: "JOB_EXEC_KILL_WALLTIME: exceeded walltime",
    -30: "JOB_EXEC_JOINJOB: join job error",
}
TORQUE_EXEC_CODES = {
    -1: "JOB_EXEC_FAIL1: exec failed before files, no retry",
    -2: "JOB_EXEC_FAIL2: exec failed after files, no retry",
    -3: "JOB_EXEC_RETRY: exec failed, retry",
    -4: "JOB_EXEC_INITABT: aborted on MOM initialisation",
    -5: "JOB_EXEC_INITRST: aborted on MOM init, checkpoint, no migrate",
    -6: "JOB_EXEC_INITRMG: aborted on MOM init, checkpoint, ok migrate",
    -7: "JOB_EXEC_BADRESRT: restart failed",
    -8: "JOB_EXEC_CMDFAIL: exec() of the user command failed",
    -9: "JOB_EXEC_STDOUTFAIL: could not create/open stdout or stderr",
    -10: "JOB_EXEC_OVERLIMIT_MEM: exceeded a memory limit",
    -11: "JOB_EXEC_OVERLIMIT_WT: exceeded the walltime limit",
    -12: "JOB_EXEC_OVERLIMIT_CPUT: exceeded the cpu time limit",
    -13: "JOB_EXEC_RETRY_CGROUP: could not create the job's cgroups",
    -14: "JOB_EXEC_RETRY_PROLOGUE: prologue failed",
}


def explain_exit(code: int, flavour: str = "pbspro") -> str:
    if code == 0:
        return "exit status 0"
    if code < 0:
        table = PBSPRO_EXEC_CODES if flavour == "pbspro" else TORQUE_EXEC_CODES
        return (
            f"exit status {code} ({table.get(code, 'set by PBS: the job did not run to its end')})"
        )
    if code >= 256:
        # The MOM reports a job shell killed by signal N as 256 + N (PBS Pro and Torque).
        sig = code - 256
        hint = " (qdel, or a walltime/resource limit)" if sig in (9, 15) else ""
        return f"exit status {code} (job killed by signal {sig}{hint})"
    if code > 128:
        return f"exit status {code} (a command in the job died of signal {code - 128})"
    return f"exit status {code}"
