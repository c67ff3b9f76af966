"""The batch script of a SLURM learner job (slurm/direct_jobs.py) reaches bash unchanged."""

import json
import re
import shlex
import subprocess
import sys

from adaptive_snakemake.slurm.direct_jobs import MAX_WRAP, wrap


def test_a_pack_sized_command_with_quotes_and_dollars_arrives_intact(tmp_path):
    # 200 specs of 1 KB with everything a shell could mangle: quotes, $, backslashes, `;`
    specs = [
        json.dumps({"name": f"s/a~{i}", "text": 'it\'s "$HOME" `x` \\n; & | ' * 30})
        for i in range(200)
    ]
    args = " ".join(shlex.quote(spec) for spec in specs)
    out = tmp_path / "argv.json"
    dump = "import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))"
    command = f"exec {sys.executable} -c {shlex.quote(dump)} {out} {args}"
    # the same heredoc form as a non-MPI job's step
    script = f"mkdir -p {tmp_path}/d && bash -s <<'END'\n{command}\nEND\n"
    assert len(script) > 128 * 1024  # more than one command-line argument may hold
    wrapped = wrap(script)
    assert wrapped is not None and len(wrapped) <= MAX_WRAP
    # sbatch --wrap: the plugin puts it in double quotes, escaping only `"`; sh runs it
    assert re.fullmatch(r"echo [A-Za-z0-9+/=]+ \| base64 -d \| gzip -d \| bash -s", wrapped)
    subprocess.run(["sh", "-c", wrapped], check=True, cwd=tmp_path)
    assert json.loads(out.read_text())[1:] == specs
    assert (tmp_path / "d").is_dir()
