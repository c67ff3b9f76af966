"""SLURM specifics: the plugin status fix (`compat`) and `cancel-orphans`."""
