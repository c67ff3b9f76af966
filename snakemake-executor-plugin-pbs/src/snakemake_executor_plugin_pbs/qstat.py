"""qstat: the command line per flavour, and parsers for its three output formats.

Formats (the parser picks one from the first character of the output):

- PBS Pro / OpenPBS ``qstat -f -x -F json ID...``: ``{"Jobs": {"123.server": {...}}}``,
  ``job_state`` and, once finished, ``Exit_status``. ``-x`` includes finished (history)
  jobs, which the server keeps only if ``job_history_enable`` is set.
- Torque ``qstat -f -x ID...``: XML, ``<Data><Job><Job_Id>..</Job_Id>..<job_state>C
  </job_state>..<exit_status>0</exit_status></Job></Data>``; finished jobs stay visible
  for the server's ``keep_completed`` seconds.
- text ``qstat -f ID...``: ``Job Id: 123`` then indented ``attribute = value`` lines. The
  slurm-wlm-torque wrapper (PBS commands over Slurm) speaks only this, shows every
  finished job as ``C`` and never reports an exit status. PBS Pro and Torque text parse too.

Ids the server does not know are missing from the output (a message on stderr, exit code
153 = PBSE_UNKJOBID 15001 mod 256, which the slurm wrapper mimics).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .flavour import FLAVOURS

# Job states (PBS Pro: pbs_job_attributes(7B); Torque: qstat(1B)).
FINISHED_STATES = frozenset("FCX")  # F finished (PBS Pro), C completed (Torque), X expired subjob
ACTIVE_STATES = frozenset("QRHWSTUBEM")  # E exiting: still cleaning up, exit status not final
UNKNOWN_JOB_RC = 153  # PBSE_UNKJOBID (15001) & 0xff


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # one letter as qstat prints it
    exit_status: int | None = None
    comment: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass
class QueryResult:
    """One qstat call. ``ok`` means absent ids really are unknown to the server."""

    ok: bool
    jobs: dict[str, JobState] = field(default_factory=dict)
    rc: int | None = None
    error: str | None = None


# command lines -------------------------------------------------------------------------------


def qstat_argv(flavour: str, job_ids: list[str]) -> list[str]:
    if flavour == "pbspro":
        return ["qstat", "-f", "-x", "-F", "json", *job_ids]
    if flavour == "torque":
        return ["qstat", "-f", "-x", *job_ids]  # Torque's -x is XML output
    if flavour == "slurm-torque":
        return ["qstat", "-f", *job_ids]  # the wrapper rejects -x
    raise ValueError(f"unknown PBS flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")


# parsers ----------------------------------------------------------------------------------------


def parse_qstat_output(text: str) -> dict[str, JobState]:
    """Jobs by id from any of the three formats; an empty or blank output has no jobs."""
    head = text.lstrip()[:1]
    if head == "{":
        return parse_pbspro_json(text)
    if head == "<":
        return parse_torque_xml(text)
    return parse_qstat_text(text)


def parse_pbspro_json(text: str) -> dict[str, JobState]:
    try:
        data = json.loads(text, strict=False)  # strict=False: raw control chars in values
    except ValueError:
        # Some PBS Pro releases emit invalid JSON (unescaped quotes or backslashes in a
        # job name or Variable_List); the states are still there to be read.
        return _scan_pbspro_json(text)
    jobs = (data.get("Jobs") or {}) if isinstance(data, dict) else {}
    result = {}
    for job_id, attrs in jobs.items():
        if isinstance(attrs, dict) and attrs.get("job_state"):
            result[job_id] = JobState(
                job_id,
                str(attrs["job_state"]),
                _int_or_none(attrs.get("Exit_status")),
                _str_or_none(attrs.get("comment")),
            )
    return result


_JSON_JOB_KEY = re.compile(r'"([0-9]+(?:\[[0-9]*\])?\.[^"\s]+)"\s*:\s*\{')
_JSON_STATE = re.compile(r'"job_state"\s*:\s*"([A-Z])"')
_JSON_EXIT = re.compile(r'"Exit_status"\s*:\s*"?(-?[0-9]+)')


def _scan_pbspro_json(text: str) -> dict[str, JobState]:
    keys = list(_JSON_JOB_KEY.finditer(text))
    result = {}
    for i, key in enumerate(keys):
        block = text[key.end() : keys[i + 1].start() if i + 1 < len(keys) else len(text)]
        state = _JSON_STATE.search(block)
        if state:
            code = _JSON_EXIT.search(block)
            job_id = key.group(1)
            result[job_id] = JobState(job_id, state.group(1), int(code.group(1)) if code else None)
    return result


_XML_DECL = re.compile(r"<\?xml[^>]*\?>")


def parse_torque_xml(text: str) -> dict[str, JobState]:
    body = _XML_DECL.sub("", text)
    try:
        root = ET.fromstring(f"<qstat>{body}</qstat>")  # Torque may print several <Data>
    except ET.ParseError:
        return _scan_torque_xml(body)
    result = {}
    for job in root.iter("Job"):
        job_id = (job.findtext("Job_Id") or "").strip()
        state = (job.findtext("job_state") or "").strip()
        if job_id and state:
            result[job_id] = JobState(
                job_id,
                state,
                _int_or_none(job.findtext("exit_status")),
                _str_or_none(job.findtext("comment")),
            )
    return result


def _scan_torque_xml(text: str) -> dict[str, JobState]:
    result = {}
    for block in text.split("<Job>")[1:]:  # a truncated answer may lack the closing tags
        job_id = re.search(r"<Job_Id>\s*([^<\s]+)\s*</Job_Id>", block)
        state = re.search(r"<job_state>\s*([A-Z])\s*</job_state>", block)
        if job_id and state:
            code = re.search(r"<exit_status>\s*(-?[0-9]+)\s*</exit_status>", block)
            result[job_id.group(1)] = JobState(
                job_id.group(1), state.group(1), int(code.group(1)) if code else None
            )
    return result


_TEXT_JOB = re.compile(r"^Job Id:\s*(\S+)")
_TEXT_ATTR = re.compile(r"^\s+([A-Za-z_][\w.]*) = (.*)$")


def parse_qstat_text(text: str) -> dict[str, JobState]:
    result = {}
    job_id: str | None = None
    attrs: dict[str, str] = {}

    def flush():
        if job_id and attrs.get("job_state"):
            exit_status = attrs.get("Exit_status", attrs.get("exit_status"))
            result[job_id] = JobState(
                job_id, attrs["job_state"].strip(), _int_or_none(exit_status), attrs.get("comment")
            )

    for line in text.splitlines():
        start = _TEXT_JOB.match(line)
        if start:
            flush()
            job_id, attrs = start.group(1), {}
            continue
        attr = _TEXT_ATTR.match(line)
        if job_id and attr:
            attrs.setdefault(attr.group(1), attr.group(2).strip())
    flush()
    return result


def _int_or_none(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


def lookup(jobs: dict[str, JobState], job_id: str) -> JobState | None:
    """The job's state, also when qsub and qstat spell the server part differently.

    Torque may print ``123.host`` from qsub and ``123.host.domain`` in qstat; only ids we
    asked for are in ``jobs``, so the sequence number alone is unambiguous.
    """
    found = jobs.get(job_id)
    if found is None:
        seq = job_id.split(".", 1)[0]
        for other_id, other in jobs.items():
            if other_id.split(".", 1)[0] == seq:
                return other
    return found


# what an answer proves ----------------------------------------------------------------------


def interpret(rc: int | None, stdout: str, stderr: str, error: str | None = None) -> QueryResult:
    """Decide whether a qstat answer can be trusted about jobs missing from it.

    qstat exits non-zero when any id is unknown, so a non-zero code alone proves nothing;
    a round is only an error if qstat did not run, or failed without saying why.
    """
    if error is not None:
        return QueryResult(ok=False, rc=rc, error=error)
    jobs = parse_qstat_output(stdout)
    says_unknown = "unknown job" in stderr.lower()
    if rc == 0 or jobs or says_unknown or (rc == UNKNOWN_JOB_RC and not stderr.strip()):
        return QueryResult(ok=True, jobs=jobs, rc=rc)
    message = (stderr.strip() or stdout.strip() or f"qstat exited with {rc}").splitlines()[-1]
    return QueryResult(ok=False, rc=rc, error=message[:500])
