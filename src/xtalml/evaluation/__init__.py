"""Evaluation: metrics on held-out rows and the baselines every model is compared with."""
