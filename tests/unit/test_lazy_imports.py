"""A learner job defers scipy.stats, pandas and versioningit until they are used."""

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_job_starts_without_the_deferred_modules():
    out = _run(
        """
        import sys
        import adaptive_snakemake.job.__main__
        import adaptive
        loaded = [m for m in ("scipy.stats._stats_py", "pandas.core.frame") if m in sys.modules]
        print(loaded)
        """
    )
    assert out.strip() == "[]"


def test_what_uses_them_gets_the_real_modules():
    out = _run(
        """
        import pickle
        import adaptive_snakemake.job.__main__
        import adaptive

        # AverageLearner1D asks scipy.stats for Student's t when it has repeated points
        import random

        def noisy(seed_x):  # adaptive hands AverageLearner1D's function (seed, x)
            return seed_x[1] + random.gauss(0, 0.1)

        learner = adaptive.AverageLearner1D(noisy, bounds=(-1, 1), min_samples=2)
        adaptive.runner.simple(learner, npoints_goal=40)
        print(learner.npoints, learner.loss() >= 0)
        frame = adaptive.Learner1D(lambda x: x, bounds=(-1, 1))
        adaptive.runner.simple(frame, npoints_goal=5)
        table = frame.to_dataframe()  # pandas
        print(len(table), type(pickle.loads(pickle.dumps(table))).__name__)
        import pandas.core.frame  # a submodule first: the package loads before it
        from scipy.stats import norm
        print(pandas.core.frame.DataFrame is type(table), round(norm.cdf(0), 2))
        """
    )
    assert out.split() == ["40", "True", "5", "DataFrame", "True", "0.5"]
