"""The one table of paired tests and the estimands they serve (a pure leaf: imports nothing).

``harness.hypothesis`` validates a declared ``Prediction`` against it and ``analysis.decide``
checks the prediction it is handed against the same table, so the two can never disagree.

What each test estimates, and which tests are valid for a declared estimand: the sign test is
exact for the median of any continuous law; sign-flip ("permutation") and signed-rank
("wilcoxon") need symmetry (their centre is the pseudo-median, = mean = median when symmetric);
for the mean only the studentised bootstrap corrects the skewness error (t is allowed, with the
skew warning). The FIRST test of each estimand is its default: ``Prediction(estimand=...)``
without a test gets it, and a prediction without either gets ``DEFAULT_TEST``. Both are part of
every registered content hash (the canonical prediction stores the resolved test), so the
order here must not change.

    >>> ESTIMANDS["pseudomedian"][0], IMPLIED_ESTIMAND[DEFAULT_TEST]
    ('permutation', 'pseudomedian')
"""

__all__ = ["DEFAULT_TEST", "ESTIMANDS", "IMPLIED_ESTIMAND", "TESTS"]

# The paired tests analysis.stats_* implement, in the order every list of them is shown.
TESTS = ("permutation", "wilcoxon", "t", "sign", "bootstrap_t")
# The test a prediction gets when it declares neither a test nor an estimand.
DEFAULT_TEST = "permutation"
# Prediction.estimand -> the tests valid for it (the first is the default).
ESTIMANDS = {"mean": ("bootstrap_t", "t"), "median": ("sign",), "pseudomedian": ("permutation", "wilcoxon")}
# The estimand a test estimates when the prediction declares none (files written before
# estimands existed keep this reading).
IMPLIED_ESTIMAND = {"permutation": "pseudomedian", "wilcoxon": "pseudomedian", "t": "mean",
                    "sign": "median", "bootstrap_t": "mean"}
