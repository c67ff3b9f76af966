"""Runs one learner inside its job; under MPI: python -m mpi4py.futures run_learner.py ..."""

import sys

from adaptive_snakemake.job import main

if __name__ == "__main__":  # mpi4py.futures workers import this file too
    sys.exit(main())
