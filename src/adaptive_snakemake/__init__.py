"""Run many adaptive learners as checkpointed Snakemake targets."""
