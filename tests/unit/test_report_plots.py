"""The report's precision-recall curve: a step curve by increasing recall, no artificial points."""

from __future__ import annotations

import numpy as np

from training.evaluate import pr_steps


def test_pr_curve_has_no_drop_to_zero_precision_at_zero_recall() -> None:
    # the top-scored order is not abuse: sklearn's curve has (recall 0, precision 0) and (0, 1) there
    y = np.array([0, 1, 1, 0, 0, 1, 0, 0])
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.5, 0.4, 0.2, 0.1])
    recall, precision = pr_steps(y, scores)
    assert (recall > 0).all() and np.all(np.diff(recall) >= 0)
    assert precision[0] == 0.5  # the first abusive order caught: 1 of the 2 top-scored
    assert recall[-1] == 1.0 and precision[-1] == 3 / 8
