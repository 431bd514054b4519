"""Evaluation: the DAVIS measures J and F, per-sequence statistics, dataset summaries.

The measures follow the official DAVIS toolkit (davis2017-evaluation, metrics.py and utils.py) to
the last digit; `fusionseg.metrics.reference` is a frame-by-frame transcription of the same
definitions that the tests and `benchmarks/score.py` check the fast implementation against.
"""
