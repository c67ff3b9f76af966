"""Snakemake executor plugin for PBS: PBS Pro / OpenPBS, Torque, and Slurm's PBS wrappers.

One job script and one ``qsub`` per job; ONE ``qstat`` per status round for all active
jobs; ONE ``qdel`` for all of them on Ctrl-C. Modules by concern:

``submit``   the qsub command line and the job script (with its exit marker)
``qstat``    the qstat command line and parsers for its three output formats
``status``   the decision rules: qstat's answer + exit marker -> running|success|failed
``flavour``  which PBS this is, when the settings do not say
``files``    the plugin's directory (.snakemake/pbs/), exit markers, the event log
``proc``     running the PBS clients out of reach of Ctrl-C, with a deadline
"""

# No `from __future__ import annotations` here: Snakemake builds its command line options
# from the settings fields' types, and needs them as types, not strings.
import asyncio
import json
import os
import secrets
import shlex
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from .files import PbsDir, atomic_write_text
from .flavour import FLAVOURS, FlavourError, detect_flavour
from .proc import run
from .qstat import interpret, lookup, qstat_argv
from .status import DEFAULT_GRACE, FAILED, SUCCESS, JobRecord, decide
from .submit import SubmitError, job_script, parse_job_id, qsub_argv, request_from_properties

__all__ = ["Executor", "ExecutorSettings", "common_settings"]


def _setting(help: str, type: type, env_var: bool = True, **more) -> dict:
    # An explicit type: argparse needs one for Optional[...] fields.
    return {"help": help, "type": type, "env_var": env_var, "required": False, **more}


# Optional[...] rather than `X | None`: Snakemake's settings parser recognises only the
# typing form.
@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    """Every setting is also a command line option (--pbs-<name>), a profile key
    (pbs-<name>) and, where marked, an environment variable (SNAKEMAKE_PBS_<NAME>)."""

    flavour: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata=_setting(
            "Which PBS: pbspro (PBS Pro / OpenPBS: -l select=1:ncpus=..:mpiprocs=..:mem=.., "
            "qstat -f -x -F json), torque (-l nodes=1:ppn=..,mem=..,walltime=.., qstat -f -x "
            "XML) or slurm-torque (Slurm's PBS wrappers: Torque syntax, plain qstat -f). "
            "Default: detected from qstat.",
            str,
            choices=list(FLAVOURS),
        ),
    )
    queue: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata=_setting(
            "Queue for every job (qsub -q); a rule's resource pbs_queue overrides it. "
            "Default: the server's default queue.",
            str,
        ),
    )
    account: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata=_setting(
            "Account / project to charge (qsub -A); a rule's resource pbs_account "
            "overrides it. Default: none.",
            str,
        ),
    )
    extra_args: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata=_setting(
            "More qsub arguments for every job, in shell syntax (e.g. '-m n -l place=scatter'); "
            "a rule's resource pbs_extra is appended. With slurm-torque, -l options are merged "
            "into the one -l the wrapper keeps.",
            str,
        ),
    )
    log_dir: str = field(
        default="logs/pbs",
        metadata=_setting(
            "Directory (relative to the working directory) for each job's output: "
            "<rule>.<wildcards>.<random>.log.",
            str,
        ),
    )
    name_max: Optional[int] = field(  # noqa: UP045
        default=None,
        metadata=_setting(
            "Longest job name (qsub -N) the server accepts. Default: 236 for pbspro, 15 for "
            "torque and slurm-torque (old servers refuse longer names).",
            int,
        ),
    )
    grace_seconds: float = field(
        default=DEFAULT_GRACE,
        metadata=_setting(
            "Seconds to wait for a job's exit marker when qstat shows the job finished "
            "without an exit status, or no longer knows it. Covers NFS attribute caching "
            "between the compute node that writes the marker and this node; after it the "
            "job is failed (qdel and walltime kills leave no marker).",
            float,
        ),
    )
    qstat_timeout: float = field(
        default=60.0,
        metadata=_setting(
            "Seconds before a qstat call is abandoned; the round then decides nothing and "
            "the jobs stay running until the next round.",
            float,
        ),
    )
    qsub_timeout: float = field(
        default=120.0,
        metadata=_setting("Seconds before a qsub call is abandoned (the job then fails).", float),
    )
    qdel_timeout: float = field(
        default=60.0,
        metadata=_setting("Seconds to wait for the qdel that cancels the jobs (Ctrl-C).", float),
    )


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    # qsub -V hands the whole environment to the job: no declarations in the job script.
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
)


class Executor(RemoteExecutor):
    def __post_init__(self):
        settings = self.workflow.executor_settings
        self.settings = settings
        workdir = Path(self.workflow.workdir_init)
        self.pbs_dir = PbsDir(workdir / ".snakemake" / "pbs").ensure()
        self.pbs_dir.prune_markers(time.time())
        self.pbs_dir.rotate_events()
        self.log_dir = workdir / settings.log_dir
        self.extra_args = tuple(shlex.split(settings.extra_args or ""))
        self.flavour = settings.flavour or self._detect_flavour()
        # Every submitted job not yet decided. RemoteExecutor.cancel() passes only the jobs
        # that are not in the middle of a status round (it empties active_jobs while it
        # checks them), so cancel_jobs() qdels these instead.
        self.undecided: dict[str, SubmittedJobInfo] = {}
        self.undecided_lock = threading.Lock()

    def _detect_flavour(self) -> str:
        try:
            flavour, warning = detect_flavour()
        except FlavourError as e:
            raise WorkflowError(f"PBS executor: {e}") from None
        if warning:
            self.logger.warning(f"PBS executor: {warning}")
        self.logger.info(f"PBS executor: flavour {flavour} (detected from qstat)")
        self.pbs_dir.log_event("flavour", flavour=flavour, detected=True)
        return flavour

    def get_job_exec_prefix(self, job: JobExecutorInterface) -> str:
        # PBS Pro and Torque start a job in $HOME, not where it was submitted.
        if self.workflow.storage_settings.assume_common_workdir:
            return f"cd {shlex.quote(self.workflow.workdir_init)}"
        return ""

    # submission ---------------------------------------------------------------------------

    def run_job(self, job: JobExecutorInterface):
        properties = job.properties()
        request = request_from_properties(
            json.loads(properties),
            queue=self.settings.queue,
            account=self.settings.account,
            extra=self.extra_args,
        )
        token = f"{request.name[:100]}.{secrets.token_hex(4)}"
        log = self.log_dir / f"{token}.log"
        script = self.pbs_dir.scripts_dir / f"{token}.sh"
        text = self.jobscript.format(properties=properties, exec_job=self.format_job_exec(job))
        argv = qsub_argv(self.flavour, request, str(script), str(log), self.settings.name_max)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(script, job_script(text, self.pbs_dir.marker(token)), 0o755)
            job_id = self._qsub(argv)
        except (SubmitError, OSError) as e:
            self.pbs_dir.log_event("qsub-failed", name=request.name, argv=argv, error=str(e))
            self.report_job_error(SubmittedJobInfo(job), msg=f"PBS submission failed: {e}\n")
            return
        finally:
            script.unlink(missing_ok=True)  # qsub keeps its own copy of the script

        record = JobRecord(job_id, token=token, name=request.name, submitted=time.time())
        job_info = SubmittedJobInfo(job, external_jobid=job_id, aux={"record": record, "log": log})
        with self.undecided_lock:
            self.undecided[job_id] = job_info
        self.pbs_dir.log_event("qsub", job_id=job_id, name=request.name, log=log, argv=argv)
        self.logger.info(
            f"Submitted job {job.jobid} with external jobid '{job_id}' "
            f"(PBS job output: {os.path.relpath(log, self.workflow.workdir_init)})."
        )
        self.report_job_submission(job_info)

    def _qsub(self, argv: list[str]) -> str:
        # Without this, a SNAKEMAKE_PROFILE in the user's environment reaches the snakemake
        # inside the job (qsub -V), which would then submit its rule to PBS again.
        env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
        out = run(argv, timeout=self.settings.qsub_timeout, env=env)
        if out.error or out.rc != 0:
            detail = out.error or (out.stderr.strip() or out.stdout.strip())
            raise SubmitError(f"{shlex.join(argv)}\nfailed (exit {out.rc}): {detail}")
        return parse_job_id(out.stdout)

    # status -------------------------------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            return
        started = time.time()
        job_ids = [j.external_jobid for j in active_jobs]
        async with self.status_rate_limiter:
            out = await asyncio.to_thread(
                run, qstat_argv(self.flavour, job_ids), self.settings.qstat_timeout
            )
        result = interpret(out.rc, out.stdout, out.stderr, out.error)
        now = time.time()
        round_log = {
            "started": round(started, 3),
            "seconds": round(now - started, 3),
            "njobs": len(job_ids),
            "rc": result.rc,
        }
        if not result.ok:
            # Server down or qstat broken: absent ids prove nothing. Everything stays running.
            self.pbs_dir.log_event("status", **round_log, error=result.error)
            self.logger.warning(f"PBS executor: qstat failed, retrying next round: {result.error}")
            for job_info in active_jobs:
                yield job_info
            return

        records = [j.aux["record"] for j in active_jobs]
        markers = self.pbs_dir.read_markers({r.token for r in records if r.token})
        for job_info, record in zip(active_jobs, records, strict=True):
            job_info.aux["record"] = decide(
                record,
                lookup(result.jobs, record.job_id),
                markers.get(record.token) if record.token else None,
                now,
                self.settings.grace_seconds,
                self.flavour,
            )
        decided = {
            j.external_jobid: [j.aux["record"].status, j.aux["record"].reason]
            for j in active_jobs
            if j.aux["record"].final
        }
        self.pbs_dir.log_event("status", **round_log, decided=decided)

        for job_info in active_jobs:
            record = job_info.aux["record"]
            if not record.final:
                yield job_info
                continue
            with self.undecided_lock:
                self.undecided.pop(record.job_id, None)
            if record.status == SUCCESS:
                self.report_job_success(job_info)
            elif record.status == FAILED:
                # The job output's path, not its text (aux_logs): it holds the inner
                # snakemake's whole report, which would repeat the rule's error and log.
                log = job_info.aux["log"]
                self.report_job_error(
                    job_info,
                    msg=f"PBS job {record.job_id} failed: {record.reason}. Job output: {log}\n",
                )

    # cancellation -------------------------------------------------------------------------

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]):
        with self.undecided_lock:
            jobs = {j.external_jobid: j for j in active_jobs if j.external_jobid}
            jobs.update(self.undecided)
            self.undecided.clear()  # a second cancel must not qdel them again
        if not jobs:
            return
        job_ids = sorted(jobs)
        self.logger.info(f"PBS executor: cancelling {len(job_ids)} jobs with one qdel.")
        out = run(["qdel", *job_ids], timeout=self.settings.qdel_timeout)
        self.pbs_dir.log_event(
            "qdel", job_ids=job_ids, rc=out.rc, output=(out.stdout + out.stderr)[-2000:]
        )
        if out.error or out.rc != 0:
            # Typically "job has finished" for some ids: nothing left to cancel there.
            detail = out.error or (out.stderr.strip() or out.stdout.strip())[-500:]
            self.logger.warning(f"PBS executor: qdel exited with {out.rc}: {detail}")
