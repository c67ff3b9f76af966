"""SLURM specifics: fenced fixes of the slurm plugin (`compat`) and `cancel-orphans`."""
