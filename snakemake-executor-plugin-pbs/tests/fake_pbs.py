"""A fake PBS server for tests: ``fake_pbs.py qstat|qsub|qdel ARGS...``.

State lives in ``$FAKE_PBS_DIR``:

- ``jobs.json``  {job_id: {"state": "R", "exit": 0 | null}}; a job missing from it is
                 unknown to the server (purged);
- ``calls.log``  one JSON line per invocation: {"cmd": ..., "argv": [...]}.

``$FAKE_PBS_FORMAT`` picks the qstat output: json (PBS Pro), xml (Torque) or text (the
slurm-wlm-torque wrapper, which never prints an exit status). ``$FAKE_PBS_RUN=1`` makes
qsub run the job script in the background like a one-node scheduler would: R while it
runs, then F/C with its exit code.
"""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DIR = Path(os.environ.get("FAKE_PBS_DIR", "."))
SERVER = "pbs01"


def install(bin_dir: Path, python: str) -> None:
    """Put qstat, qsub and qdel commands that run this fake into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for cmd in ("qstat", "qsub", "qdel"):
        path = bin_dir / cmd
        path.write_text(f'#!/bin/sh\nexec "{python}" "{Path(__file__).resolve()}" {cmd} "$@"\n')
        path.chmod(0o755)


def load() -> dict:
    try:
        return json.loads((DIR / "jobs.json").read_text())
    except FileNotFoundError:
        return {}


def save(jobs: dict) -> None:
    tmp = DIR / f".jobs.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(jobs))
    os.replace(tmp, DIR / "jobs.json")


@contextlib.contextmanager
def locked():
    """Read-modify-write of jobs.json by concurrent qsub/qdel/job processes."""
    with open(DIR / "jobs.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def log_call(cmd: str, argv: list) -> None:
    with open(DIR / "calls.log", "a") as f:
        f.write(json.dumps({"cmd": cmd, "argv": argv}) + "\n")


def torque_state(job: dict) -> str:
    return "C" if job["state"] == "F" else job["state"]


def qstat(argv: list) -> int:
    if argv == ["--version"]:
        print("pbs_version = 22.05.11")
        return 0
    ids, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "-F":
            skip = True
        elif not a.startswith("-"):
            ids.append(a)
    jobs = load()
    fmt = os.environ.get("FAKE_PBS_FORMAT", "json")
    known = {i: jobs[i] for i in ids if i in jobs}
    unknown = [i for i in ids if i not in jobs]
    if fmt == "json":
        out = {"timestamp": int(time.time()), "pbs_version": "22.05.11", "pbs_server": SERVER}
        if known:
            out["Jobs"] = {
                i: {
                    "job_state": j["state"],
                    **({"Exit_status": j["exit"]} if j.get("exit") is not None else {}),
                }
                for i, j in known.items()
            }
        print(json.dumps(out, indent=4))
    elif fmt == "xml":
        if known:
            body = "".join(
                f"<Job><Job_Id>{i}</Job_Id><job_state>{torque_state(j)}</job_state>"
                + (f"<exit_status>{j['exit']}</exit_status>" if j.get("exit") is not None else "")
                + "</Job>"
                for i, j in known.items()
            )
            print(f"<Data>{body}</Data>")
    else:
        for i, j in known.items():
            print(f"Job Id:\t{i}\n\tJob_Name = fake\n\tjob_state = {torque_state(j)}\n")
    for i in unknown:
        if fmt != "text":  # the wrapper says nothing about unknown ids
            print(f"qstat: Unknown Job Id {i}", file=sys.stderr)
    return 153 if unknown and not (fmt == "text" and known) else 0


def qsub(argv: list) -> int:
    script = argv[-1]
    with locked():
        jobs = load()
        number = 1 + max((int(i.split(".")[0]) for i in jobs), default=100)
        job_id = f"{number}.{SERVER}"
        (DIR / "scripts").mkdir(exist_ok=True)
        copy = DIR / "scripts" / f"{job_id}.sh"
        copy.write_text(Path(script).read_text())  # PBS keeps its own copy of the script
        jobs[job_id] = {"state": "Q", "exit": None}
        save(jobs)
    if os.environ.get("FAKE_PBS_RUN") == "1":
        log = argv[argv.index("-o") + 1] if "-o" in argv else os.devnull
        subprocess.Popen(
            [sys.executable, __file__, "_run", job_id, str(copy), log],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(job_id)
    return 0


def run_job(job_id: str, script: str, log: str) -> int:
    def set_state(state, code=None):
        with locked():
            jobs = load()
            if job_id in jobs and jobs[job_id]["state"] != "F":
                jobs[job_id] = {"state": state, "exit": code, "pgid": os.getpgid(0)}
                save(jobs)

    set_state("R")
    with open(log, "ab") as out:
        rc = subprocess.call(["/bin/sh", script], stdout=out, stderr=out)
    set_state("F", rc if rc >= 0 else 256 - rc)
    return 0


def qdel(argv: list) -> int:
    with locked():
        jobs = load()
        for i in argv:
            if i in jobs and jobs[i]["state"] != "F":
                if jobs[i].get("pgid"):  # running: SIGTERM to the job, as PBS does
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(jobs[i]["pgid"], signal.SIGTERM)
                jobs[i] = {"state": "F", "exit": 271}
        save(jobs)
    return 0


class FakeServer:
    """Test-side handle on the fake's state directory."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def set_jobs(self, jobs: dict) -> None:
        """{job_id: (state, exit or None)}; ids left out are unknown to the server."""
        data = {i: {"state": s, "exit": e} for i, (s, e) in jobs.items()}
        tmp = self.root / ".jobs.test.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.root / "jobs.json")

    def jobs(self) -> dict:
        try:
            return json.loads((self.root / "jobs.json").read_text())
        except FileNotFoundError:
            return {}

    def calls(self, cmd: str | None = None) -> list:
        try:
            lines = (self.root / "calls.log").read_text().splitlines()
        except FileNotFoundError:
            return []
        calls = [json.loads(line) for line in lines]
        return [c["argv"] for c in calls if cmd is None or c["cmd"] == cmd]


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd != "_run":
        log_call(cmd, args)
    if cmd == "_run":
        sys.exit(run_job(*args))
    sys.exit({"qstat": qstat, "qsub": qsub, "qdel": qdel}[cmd](args))
