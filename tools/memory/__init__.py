"""The analytic GPU-memory estimator: training and inference terms, multi-GPU sharding, verdicts."""
