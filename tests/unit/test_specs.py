import time

import pytest

from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.specs.parse import format_value, learner_name, load_specs

GRID = """
defaults:
  executor: process-pool
  tasks: 2
  goal: {npoints: 50}
  resources: {runtime: 30}
sweeps:
  h:
    function: m:h
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    combos: {pow: [0, 1, 2], a: [0.1, 0.5]}
    fixed: {c: 3}
    resources: {mem_mb: 500}
  single:
    function: m:g
    learner: Learner1D
    learner_kwargs: {bounds: [0, 1]}
    executor: mpi4py
    tasks: 4
    goal: {loss: 0.01, duration: "1h30m"}
"""


def test_grid_expands_to_one_learner_per_combination_in_written_order(write_learners):
    specs = load_specs(write_learners(GRID))
    names = [s.name for s in specs]
    assert names[:6] == [
        "h/pow~0/a~0.1",
        "h/pow~0/a~0.5",
        "h/pow~1/a~0.1",
        "h/pow~1/a~0.5",
        "h/pow~2/a~0.1",
        "h/pow~2/a~0.5",
    ]
    assert names[6] == "single"
    first = specs[0]
    assert first.params == {"pow": 0, "a": 0.1}
    assert first.fixed == {"c": 3}
    assert first.executor == "process-pool" and first.tasks == 2


def test_defaults_are_overridden_per_sweep_and_resources_merge(write_learners):
    specs = {s.name: s for s in load_specs(write_learners(GRID))}
    assert specs["h/pow~0/a~0.1"].resources == {"runtime": 30, "mem_mb": 500}
    single = specs["single"]
    assert single.executor == "mpi4py" and single.tasks == 4
    # a sweep's goal replaces the default goal: it does not inherit npoints
    assert single.goal == {"loss": 0.01, "duration": 5400.0}
    assert single.resources == {"runtime": 30, "mem_mb": 2000}


def test_names_are_stable_when_a_grid_value_is_added(write_learners):
    before = {s.name: s.fingerprint for s in load_specs(write_learners(GRID))}
    after = {s.name: s.fingerprint for s in load_specs(write_learners(GRID.replace("2]", "2, 3]")))}
    assert set(before) < set(after)
    assert all(after[name] == fingerprint for name, fingerprint in before.items())
    sweeps_before = {s.sweep_fingerprint for s in load_specs(write_learners(GRID))}
    sweeps_after = {
        s.sweep_fingerprint for s in load_specs(write_learners(GRID.replace("2]", "2, 3]")))
    }
    assert sweeps_before == sweeps_after  # nothing to rerun for the existing learners
    assert "h/pow~3/a~0.1" in after


def test_goal_change_keeps_fingerprint_but_definition_change_does_not(write_learners):
    base = {s.name: s for s in load_specs(write_learners(GRID))}
    goal = {
        s.name: s for s in load_specs(write_learners(GRID.replace("npoints: 50", "npoints: 99")))
    }
    bounds = {s.name: s for s in load_specs(write_learners(GRID.replace("[-1, 1]", "[-2, 2]")))}
    name = "h/pow~1/a~0.5"
    assert goal[name].goal == {"npoints": 99}
    assert goal[name].fingerprint == base[name].fingerprint
    assert goal[name].sweep_fingerprint != base[name].sweep_fingerprint  # rerun, continue
    assert bounds[name].fingerprint != base[name].fingerprint


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (-3, "-3"), (0.1, "0.1"), (1.0, "1.0"), (1e-5, "1e-05"), (True, "true"), ("a", "a")],
)
def test_values_format_canonically(value, text):
    assert format_value(value) == text


def test_sweep_without_grid_is_named_by_the_sweep():
    assert learner_name("s", {}) == "s"
    assert learner_name("s", {"p": 1, "q": "x"}) == "s/p~1/q~x"


BAD = [
    (
        "unknown top-level key",
        "sweepz: {}\nsweeps: {s: {function: m:f, learner: Learner1D}}",
        ["top level", "unknown key 'sweepz'"],
    ),
    (
        "unknown sweep key",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, colour: red}",
        ["sweep 's'", "unknown key 'colour'"],
    ),
    (
        "wrong type",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, tasks: three}",
        ["sweep 's', key 'tasks'", "'three' is not of type 'integer'"],
    ),
    (
        "empty grid",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: []}}",
        ["sweep 's', key 'combos.p'", "should be non-empty"],
    ),
    (
        "unknown executor",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, executor: ray}",
        ["sweep 's', key 'executor'", "'ray' is not one of"],
    ),
    (
        "negative interval",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, save_interval: -5}",
        ["sweep 's', key 'save_interval'", "duration"],
    ),
    (
        "bad duration",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, goal: {duration: soon}}",
        ["sweep 's', key 'goal.duration'", "duration"],
    ),
    (
        "missing function",
        "sweeps:\n  s: {learner: Learner1D}",
        ["sweep 's', key 'function'", "missing"],
    ),
    ("malformed yaml", "sweeps:\n  s: {function: m:f\n  t: [", ["malformed YAML", "line"]),
    (
        "duplicate sweep",
        "sweeps:\n  s: {function: m:f, learner: Learner1D}\n"
        "  s: {function: m:g, learner: Learner1D}",
        ["duplicate key 's'"],
    ),
    (
        "duplicate names",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: [1, '1']}}",
        ["sweep 's', key 'combos'", "same name 's/p~1'"],
    ),
    (
        "unsafe value",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: ['a/b']}}",
        ["sweep 's', key 'combos.p'", "file name"],
    ),
    (
        "dask-mpi without a worker rank",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, executor: dask-mpi, tasks: 2}",
        ["sweep 's', key 'tasks'", "at least 3 ranks"],
    ),
    ("no sweeps", "defaults: {tasks: 2}", ["'sweeps' is a required property"]),
    (
        "slurm setting in one sweep only",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, resources: {slurm_partition: gpu}}\n"
        "  t: {function: m:f, learner: Learner1D}",
        ["sweep 't', key 'resources.slurm_partition'", "defaults.resources"],
    ),
    ("not a mapping", "- a\n- b", ["expected a mapping"]),
    # Hardening (issue 10): names that would escape results/ and state/ or break a job.
    (
        "sweep named ..",
        "sweeps:\n  '..': {function: m:f, learner: Learner1D, combos: {offset: [0]}}",
        ["sweep '..'", "invalid name"],
    ),
    ("sweep named .", "sweeps:\n  '.': {function: m:f, learner: Learner1D}", ["invalid name"]),
    ("hidden sweep", "sweeps:\n  .s: {function: m:f, learner: Learner1D}", ["invalid name"]),
    ("leading dash", "sweeps:\n  -x: {function: m:f, learner: Learner1D}", ["invalid name"]),
    (
        "reserved sweep name",
        "sweeps:\n  plots: {function: m:f, learner: Learner1D}",
        ["sweep 'plots', key 'name'", "reserved"],
    ),
    (
        "trailing newline in a sweep name",
        'sweeps:\n  "s\\n": {function: m:f, learner: Learner1D}',
        ["invalid name"],
    ),
    (
        "trailing newline in a grid value",
        'sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: ["a\\n"]}}',
        ["sweep 's', key 'combos.p'", "file name"],
    ),
    (
        "trailing newline in a function",
        'sweeps:\n  s: {function: "m:f\\n", learner: Learner1D}',
        ["sweep 's', key 'function'", "does not match"],
    ),
    (
        "long value",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: [" + "a" * 300 + "]}}",
        ["sweep 's', key 'combos.p'", "at most 128"],
    ),
    (
        "long name",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {"
        + ", ".join(f"p{i}: [{'v' * 100}]" for i in range(6))
        + "}}",
        ["sweep 's', key 'combos'", "at most 512"],
    ),
    (
        "names differing in case",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: [a, A]}}",
        ["sweep 's', key 'combos'", "differ in case only"],
    ),
    (
        "periodic name",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: [" + "ab" * 25 + "]}}",
        ["sweep 's', key 'combos'", "periodic"],
    ),
    (
        "huge grid",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {"
        + ", ".join(f"p{i}: [{', '.join(map(str, range(10)))}]" for i in range(7))
        + "}}",
        ["sweep 's', key 'combos'", "10,000,000 learners", "max_learners"],
    ),
    (
        "alias bomb",
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "sweeps: {s: {function: m:f, learner: Learner1D, fixed: {z: *i}}}",
        ["expands to more than", "aliases"],
    ),
    ("deep nesting", "x: " + "[" * 3000 + "]" * 3000, ["nesting depth"]),
    (
        "shell in slurm_extra",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, "
        "resources: {slurm_extra: '--qos=$(touch /tmp/pwned)'}}",
        ["sweep 's', key 'resources.slurm_extra'", "--flag=value"],
    ),
    (
        "slurm_extra with a signal that kills the job's snakemake",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, "
        "resources: {slurm_extra: '--signal=USR1@60'}}",
        ["sweep 's', key 'resources.slurm_extra'", "--signal=TERM@"],
    ),
    (
        "partition with a space",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, resources: {slurm_partition: 'a b'}}",
        ["sweep 's', key 'resources.slurm_partition'"],
    ),
    (
        "after an unknown sweep",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, after: [nope]}",
        ["sweep 's', key 'after'", "no sweep named 'nope'"],
    ),
    (
        "sweeps waiting for each other",
        "sweeps:\n  a: {function: m:f, learner: Learner1D, after: [b]}\n"
        "  b: {function: m:f, learner: Learner1D, after: [c]}\n"
        "  c: {function: m:f, learner: Learner1D, after: [a]}",
        ["key 'after'", "wait for each other", "a -> b -> c -> a"],
    ),
    (
        "NaN save interval",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, save_interval: .nan}",
        ["sweep 's', key 'save_interval'", "finite"],
    ),
    (
        "infinite loss goal",
        "sweeps:\n  s: {function: m:f, learner: Learner1D, goal: {loss: .inf}}",
        ["sweep 's', key 'goal.loss'", "finite"],
    ),
    (
        "NaN duration in defaults",
        "defaults: {goal: {duration: .nan}}\nsweeps:\n  s: {function: m:f, learner: Learner1D}",
        ["sweep 's', key 'goal.duration'", "finite"],
    ),
    (
        "duplicate key inside a sweep",
        "sweeps:\n  s:\n    function: m:f\n    function: m:g\n    learner: Learner1D",
        ["sweep 's', key 'function'", "duplicate key", "line 4"],
    ),
    ("nesting beyond the limit", "x: " + "[" * 100 + "]" * 100, ["nested deeper than 64"]),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_are_refused_with_file_sweep_and_key(write_learners, case, text, expected):
    path = write_learners(text)
    with pytest.raises(ConfigError) as error:
        load_specs(path)
    message = str(error.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml: cannot read"):
        load_specs(tmp_path / "nowhere.yaml")


@pytest.mark.parametrize("case", ["alias bomb", "huge grid", "deep nesting"])
def test_bombs_are_refused_quickly(write_learners, case):
    (text,) = (b[1] for b in BAD if b[0] == case)
    path = write_learners(text)
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        load_specs(path)
    # Not a benchmark: on main these took 41 s and 900 MB, 107 s, or a RecursionError.
    assert time.perf_counter() - started < 5


def test_yaml_merge_keys_are_accepted_and_explicit_keys_win(write_learners):
    path = write_learners(
        """
        defaults: &defaults
          executor: sequential
          tasks: 1
          function: m:f
          learner: Learner1D
        sweeps:
          s:
            <<: *defaults
            learner: AverageLearner
        """
    )
    (spec,) = load_specs(path)
    assert spec.executor == "sequential" and spec.learner == "AverageLearner"


def test_duplicate_keys_are_still_refused_beside_merge_keys(write_learners):
    path = write_learners(
        """
        defaults: &defaults {tasks: 1}
        sweeps:
          s:
            <<: *defaults
            function: m:f
            function: m:g
        """
    )
    with pytest.raises(ConfigError, match="duplicate key 'function'"):
        load_specs(path)


def test_learner_limit_is_configurable(write_learners):
    path = write_learners(
        "sweeps:\n  s: {function: m:f, learner: Learner1D, combos: {p: [1, 2, 3]}}"
    )
    with pytest.raises(ConfigError, match="limit is 2"):
        load_specs(path, max_learners=2)
    assert len(load_specs(path, max_learners=3)) == 3


def test_slurm_extra_gets_the_walltime_signal_when_it_has_none(write_learners):
    path = write_learners(
        """
        defaults: {function: m:f, learner: Learner1D}
        sweeps:
          plain: {resources: {slurm_extra: "--qos=long --constraint=skylake"}}
          own: {resources: {slurm_extra: "--signal=TERM@300 --qos=long"}}
        """
    )
    specs = {s.name: s for s in load_specs(path)}
    assert (
        specs["plain"].resources["slurm_extra"]
        == "--qos=long --constraint=skylake --signal=TERM@60"
    )
    assert specs["own"].resources["slurm_extra"] == "--signal=TERM@300 --qos=long"


# -- executors: tasks per executor, scheduler_file --------------------------------------------

EXECUTOR_BAD = [
    ("ipyparallel without engines", "executor: ipyparallel, tasks: 1", "tasks", "1 controller"),
    ("dask-mpi without a worker", "executor: dask-mpi, tasks: 2", "tasks", "at least 3 ranks"),
    ("dask without scheduler_file", "executor: dask", "scheduler_file", "missing"),
    (
        "scheduler_file for another executor",
        "executor: mpi4py, scheduler_file: s.json",
        "scheduler_file",
        "only for executor dask",
    ),
    (
        "scheduler_file missing",
        "executor: dask, scheduler_file: nowhere/scheduler.json",
        "scheduler_file",
        "nowhere/scheduler.json does not exist",
    ),
    ("scheduler_file not a string", "executor: dask, scheduler_file: 3", "scheduler_file", "3"),
    (
        "dask with tasks of its own",
        "executor: dask, scheduler_file: {file}, tasks: 4",
        "tasks",
        "takes one core",
    ),
]


@pytest.mark.parametrize(
    ("case", "keys", "key", "expected"), EXECUTOR_BAD, ids=[b[0] for b in EXECUTOR_BAD]
)
def test_executor_settings_are_checked(write_learners, tmp_path, case, keys, key, expected):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text('{"address": "tcp://127.0.0.1:8786"}')
    keys = keys.replace("{file}", str(scheduler_file))
    path = write_learners(f"sweeps:\n  s: {{function: m:f, learner: Learner1D, {keys}}}")
    with pytest.raises(ConfigError) as error:
        load_specs(path)
    message = str(error.value)
    assert f"{path}: sweep 's', key '{key}'" in message
    assert expected in message


def test_scheduler_file_that_is_not_a_dask_one_is_refused(write_learners, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text("not json")
    path = write_learners(
        f"sweeps:\n  s: {{function: m:f, learner: Learner1D, executor: dask, "
        f"scheduler_file: {scheduler_file}}}"
    )
    with pytest.raises(ConfigError, match="key 'scheduler_file': .* is not a dask scheduler"):
        load_specs(path)


def test_new_executors_parse(write_learners, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text('{"type": "Scheduler", "address": "tcp://127.0.0.1:8786"}')
    path = write_learners(
        f"""
        defaults: {{tasks: 3}}
        sweeps:
          ipp: {{function: m:f, learner: Learner1D, executor: ipyparallel}}
          dmpi: {{function: m:f, learner: Learner1D, executor: dask-mpi}}
          existing: {{function: m:f, learner: Learner1D, executor: dask,
                      scheduler_file: {scheduler_file}}}
        """
    )
    specs = {s.sweep: s for s in load_specs(path)}
    assert (specs["ipp"].executor, specs["ipp"].tasks) == ("ipyparallel", 3)
    assert (specs["dmpi"].executor, specs["dmpi"].tasks) == ("dask-mpi", 3)
    # the job takes one core whatever defaults say; the cluster's workers do the work
    assert (specs["existing"].tasks, specs["existing"].scheduler_file) == (1, str(scheduler_file))
    assert specs["ipp"].scheduler_file is None
