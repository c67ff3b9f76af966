"""What is read: learners.yaml expanded into one plain spec per learner, and its checks.

Cheap on purpose (no adaptive, no user code): every snakemake process parses specs.
`validation` imports user code and adaptive, in the main process only.
"""
