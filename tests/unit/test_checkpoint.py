"""Checkpoints: atomic writes that never leave a half file, adaptive's format, fast restore."""

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
from functools import partial

import adaptive
import numpy as np
import pytest
from adaptive.learner.learner1D import curvature_loss_function

from adaptive_snakemake.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from adaptive_snakemake.job.checkpoint import CheckpointError, restore_learner, save_learner

OLD = b"the old checkpoint\n"


def peak(x, width=0.05):
    return x + width**2 / (width**2 + x**2)


def peak_vector(x):
    return np.array([peak(x), np.sin(5 * x), x**2])


def peak_2d(xy):
    x, y = xy
    return x * y + np.exp(-((x**2 + y**2 - 0.5) ** 2) / 0.01)


def noisy_peak(seed_x):
    """AverageLearner1D's functions take (seed, x)."""
    seed, x = seed_x
    return peak(x) + np.random.default_rng(seed).normal(scale=0.1)


def noise(seed):
    """AverageLearner's functions take a seed."""
    return np.random.default_rng(seed).normal()


def leftovers(directory):
    """Temporary files an atomic write left behind."""
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def run_learner(learner, npoints, batch=20):
    """Sample like a runner does: ask a batch, tell the batch."""
    while learner.npoints < npoints:
        points, _ = learner.ask(batch)
        learner.tell_many(points, [learner.function(p) for p in points])
    return learner


def state_1d(learner):
    """Everything Learner1D keeps, as plain structures; repr also tells np.float64 from float."""
    return repr(
        (
            learner.data,
            learner.pending_points,
            dict(learner.neighbors),
            dict(learner.neighbors_combined),
            list(learner.losses.items()),
            list(learner.losses_combined.items()),
            learner._scale,
            learner._oldscale,
            learner._bbox,
        )
    )


def adaptive_loaded(learner, path):
    learner.load(str(path))
    return learner


# --- atomic writes -------------------------------------------------------------------------


def test_atomic_writes_create_parents_and_replace(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b" / "blob", b"\x00\x01")
    assert (tmp_path / "a" / "b" / "blob").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "t.txt", "héllo")
    atomic_write_text(tmp_path / "t.txt", "again")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "again"
    atomic_write_json(tmp_path / "r.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "r.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert leftovers(tmp_path) == []


def test_unserialisable_json_leaves_old_file(tmp_path):
    path = tmp_path / "result.json"
    path.write_bytes(OLD)
    with pytest.raises(TypeError):
        atomic_write_json(path, {"fine": 1, "not json": object()})
    assert path.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def run_child(code, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_write_failing_midway_raises_and_leaves_old_file(tmp_path):
    """A real short write: the file size limit stops the payload after 64 kB (EFBIG)."""
    path = tmp_path / "learner.pickle"
    path.write_bytes(OLD)
    child = run_child(
        """
        import resource, signal, sys
        from adaptive_snakemake.fileio import atomic_write_bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            atomic_write_bytes(sys.argv[1], b"new" * 1_000_000)
        except OSError as e:
            print("raised", e.errno)
        """,
        path,
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.split() == ["raised", str(27)]  # EFBIG
    assert path.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_writer_killed_midway_leaves_old_file(tmp_path):
    """SIGKILL after the new bytes are written but before the rename: the old file stays."""
    path = tmp_path / "learner.pickle"
    path.write_bytes(OLD)
    child = run_child(
        """
        import os, sys, time
        from adaptive_snakemake.fileio import atomic_write_bytes
        real_fsync = os.fsync
        def fsync_then_hang(fd):
            real_fsync(fd)
            print("written", flush=True)
            time.sleep(60)
        os.fsync = fsync_then_hang
        atomic_write_bytes(sys.argv[1], b"new" * 1_000_000)
        """,
        path,
    )
    try:
        assert child.stdout.readline().strip() == "written", child.stderr.read()
        assert path.read_bytes() == OLD
        [tmp] = leftovers(tmp_path)  # the complete new payload, never renamed
        assert (tmp_path / tmp).stat().st_size == 3_000_000
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == OLD


def test_failed_save_raises(tmp_path):
    not_a_directory = tmp_path / "state"
    not_a_directory.write_text("a file where a directory should be")
    learner = run_learner(adaptive.Learner1D(peak, (-1, 1)), 10)
    with pytest.raises(OSError):
        save_learner(learner, not_a_directory / "learner.pickle")


# --- adaptive's format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: adaptive.Learner1D(peak, (-1, 1)),
        lambda: adaptive.Learner1D(peak_vector, (-1, 1)),
        lambda: adaptive.Learner2D(peak_2d, [(-1, 1), (-1, 1)]),
        lambda: adaptive.AverageLearner1D(noisy_peak, (-1, 1)),
        lambda: adaptive.AverageLearner(noise, atol=0.001),
        lambda: adaptive.SequenceLearner(peak, np.linspace(-1, 1, 200)),
    ],
    ids=["1D", "1D-vector", "2D", "Average1D", "Average", "Sequence"],
)
def test_adaptive_load_reads_our_checkpoint(tmp_path, make):
    learner = run_learner(make(), 40)
    path = tmp_path / "state" / "learner.pickle"
    save_learner(learner, path)
    loaded = adaptive_loaded(make(), path)
    assert loaded.npoints == learner.npoints
    assert repr(loaded._get_data()) == repr(learner._get_data())


def test_file_is_adaptive_format_gzip_of_cloudpickle(tmp_path):
    learner = run_learner(adaptive.Learner1D(peak, (-1, 1)), 50)
    path = tmp_path / "learner.pickle"
    save_learner(learner, path)
    learner.save(str(tmp_path / "theirs.pickle"))
    ours = gzip.decompress(path.read_bytes())
    theirs = gzip.decompress((tmp_path / "theirs.pickle").read_bytes())
    assert ours == theirs


# --- restore -------------------------------------------------------------------------------


def random_data(function, n, seed=0, integer_xs=False):
    rng = np.random.default_rng(seed)
    if integer_xs:
        xs = [-10_000, 10_000, *rng.choice(np.arange(-9999, 10_000), n - 2, replace=False).tolist()]
    else:
        xs = [-1.0, 1.0, *rng.uniform(-1, 1, n - 2).tolist()]
    return {x: function(x) for x in xs}


LEARNER1D_CASES = {
    "default-loss": lambda: adaptive.Learner1D(peak, (-1, 1)),
    "vector-output": lambda: adaptive.Learner1D(peak_vector, (-1, 1)),
    "curvature-loss": lambda: adaptive.Learner1D(
        peak, (-1, 1), loss_per_interval=curvature_loss_function()
    ),
}


@pytest.mark.parametrize("case", LEARNER1D_CASES)
@pytest.mark.parametrize("npoints", [1, 2, 3, 40, 1500])
def test_restore_learner1d_equals_adaptive_load(tmp_path, case, npoints):
    make = LEARNER1D_CASES[case]
    path = tmp_path / "learner.pickle"
    save_learner(run_learner(make(), npoints, batch=min(npoints, 20)), path)

    ours, theirs = make(), adaptive_loaded(make(), path)
    assert restore_learner(ours, path) == theirs.npoints >= npoints
    assert state_1d(ours) == state_1d(theirs)
    # Same state means the same future: keep sampling both and compare again.
    for _ in range(3):
        asked, improvements = ours.ask(7)
        assert repr((asked, improvements)) == repr(theirs.ask(7))
        assert ours.loss() == theirs.loss()
        ours.tell_many(asked, [ours.function(x) for x in asked])
        theirs.tell_many(asked, [theirs.function(x) for x in asked])
    assert state_1d(ours) == state_1d(theirs)


@pytest.mark.parametrize("integer_xs", [False, True])
def test_restore_learner1d_random_data_equals_adaptive_load(tmp_path, integer_xs):
    bounds = (-10_000, 10_000) if integer_xs else (-1, 1)
    learner = adaptive.Learner1D(peak, bounds)
    learner._set_data(random_data(peak, 3000, integer_xs=integer_xs))
    path = tmp_path / "learner.pickle"
    save_learner(learner, path)
    ours = adaptive.Learner1D(peak, bounds)
    theirs = adaptive_loaded(adaptive.Learner1D(peak, bounds), path)
    assert restore_learner(ours, path) == 3000
    assert state_1d(ours) == state_1d(theirs)
    assert repr(ours.ask(50)) == repr(theirs.ask(50))


def average1d_with_samples(npoints, seed=0):
    """An AverageLearner1D with several samples per point (its ask/tell loop is slow)."""
    learner = adaptive.AverageLearner1D(noisy_peak, (-1, 1))
    rng = np.random.default_rng(seed)
    for x in [-1.0, 1.0, *rng.uniform(-1, 1, npoints - 2).tolist()]:
        learner.tell_many_at_point(x, {s: noisy_peak((s, x)) for s in range(rng.integers(1, 4))})
    return learner


def new_2d():
    return adaptive.Learner2D(peak_2d, [(-1, 1), (-1, 1)])


def new_average1d():
    return adaptive.AverageLearner1D(noisy_peak, (-1, 1))


@pytest.mark.parametrize(
    "make, filled",
    [
        (new_2d, lambda: run_learner(new_2d(), 300)),
        (new_average1d, lambda: average1d_with_samples(300)),
    ],
    ids=["2D", "Average1D"],
)
def test_restore_2d_and_average1d_equal_adaptive_load(tmp_path, make, filled):
    path = tmp_path / "learner.pickle"
    save_learner(filled(), path)
    ours, theirs = make(), adaptive_loaded(make(), path)
    assert restore_learner(ours, path) == theirs.npoints >= 300
    assert repr(ours._get_data()) == repr(theirs._get_data())
    assert ours.loss() == theirs.loss()
    assert repr(ours.ask(10)) == repr(theirs.ask(10))


def test_restore_balancing_learner_restores_every_child(tmp_path):
    def make():
        children = [adaptive.Learner1D(partial(peak, width=w), (-1, 1)) for w in (0.1, 0.05)]
        return adaptive.BalancingLearner(children)

    learner = make()
    for child in learner.learners:
        run_learner(child, 60)
    path = tmp_path / "learner.pickle"
    save_learner(learner, path)
    ours = make()
    theirs = make()
    adaptive.BaseLearner.load(theirs, str(path))  # BalancingLearner.load wants a file per child
    assert restore_learner(ours, path) == theirs.npoints == 120
    for mine, their in zip(ours.learners, theirs.learners, strict=True):
        assert state_1d(mine) == state_1d(their)
    assert repr(ours.ask(10)) == repr(theirs.ask(10))


def test_missing_checkpoint_restores_nothing(tmp_path):
    learner = adaptive.Learner1D(peak, (-1, 1))
    assert restore_learner(learner, tmp_path / "state" / "none.pickle") == 0
    assert learner.npoints == 0


def test_empty_learner_round_trips(tmp_path):
    path = tmp_path / "learner.pickle"
    save_learner(adaptive.Learner1D(peak, (-1, 1)), path)
    assert restore_learner(adaptive.Learner1D(peak, (-1, 1)), path) == 0


def truncated(blob):
    return blob[: len(blob) // 2]


def gzip_trailer_cut(blob):
    return blob[:-4]  # the pickle is complete, only gzip's length field is missing


def not_gzip(blob):
    return b"this is not a checkpoint at all"


def garbage_pickle(blob):
    return gzip.compress(b"\x80\x05garbage")


def empty(blob):
    return b""


@pytest.mark.parametrize("damage", [truncated, gzip_trailer_cut, not_gzip, garbage_pickle, empty])
def test_damaged_checkpoint_raises_naming_the_path(tmp_path, damage):
    path = tmp_path / "state" / "h" / "pow~1" / "learner.pickle"
    save_learner(run_learner(adaptive.Learner1D(peak, (-1, 1)), 200), path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError) as excinfo:
        restore_learner(adaptive.Learner1D(peak, (-1, 1)), path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "move it aside" in message


def test_checkpoint_of_another_learner_type_raises(tmp_path):
    path = tmp_path / "learner.pickle"
    save_learner(run_learner(adaptive.AverageLearner(noise, atol=0.001), 20), path)
    with pytest.raises(CheckpointError, match="does not fit"):
        restore_learner(adaptive.Learner1D(peak, (-1, 1)), path)


def test_json_written_is_valid_for_other_readers(tmp_path):
    path = tmp_path / "result.json"
    atomic_write_json(path, {"name": "h/pow~1", "npoints": 3})
    assert json.loads(path.read_text()) == {"name": "h/pow~1", "npoints": 3}
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
