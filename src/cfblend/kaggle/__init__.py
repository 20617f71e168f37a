"""Stage 7: Kaggle. `kernel` builds a self-contained kernel script from this package; `client` runs
the kaggle command-line client (push the kernel, submit a submission)."""
