"""The one table of paired tests and the estimands they serve (a pure leaf: imports nothing).

``harness.hypothesis`` validates a declared ``Prediction`` against it and ``analysis.decide``
checks the prediction it is handed against the same table, so the two can never disagree.

What each test estimates, and which tests are valid for a declared estimand: the sign test is
exact for the median of any continuous law; sign-flip ("permutation") and signed-rank
("wilcoxon") need symmetry (their centre is the pseudo-median, = mean = median when symmetric);
for the mean the t-test is the default (issue 22: measured with t(3) differences the
studentised bootstrap missed alpha, 0.063-0.071 at n = 10-20, where t held 0.043-0.050) and
``bootstrap_t`` an option; skew beyond Cochran's rule caps the mean's verdict at inconclusive
(``analysis.comparison``). The FIRST test of each estimand is its default:
``Prediction(estimand=...)`` without a test gets it, and a prediction without either gets
``DEFAULT_TEST``. The canonical prediction stores the RESOLVED test, so a registered study keeps
the test it was registered with; but the version hash of a file that declares an estimand
without a test follows this order (mean: bootstrap_t -> t in issue 22, when no shipped
hypothesis declared estimand="mean" without a test).

    >>> ESTIMANDS["pseudomedian"][0], IMPLIED_ESTIMAND[DEFAULT_TEST]
    ('permutation', 'pseudomedian')
"""

__all__ = ["DEFAULT_TEST", "ESTIMANDS", "IMPLIED_ESTIMAND", "TESTS", "TEST_NAMES"]

# The paired tests analysis.stats_* implement, in the order every list of them is shown.
TESTS = ("permutation", "wilcoxon", "t", "sign", "bootstrap_t")
# Each test as a report names it beside every p-value it gives (issue 22: a bare "p" cannot be read).
TEST_NAMES = {"permutation": "sign-flip permutation", "wilcoxon": "Wilcoxon signed-rank", "t": "paired t",
              "sign": "exact sign", "bootstrap_t": "studentised bootstrap-t"}
# The test a prediction gets when it declares neither a test nor an estimand.
DEFAULT_TEST = "permutation"
# Prediction.estimand -> the tests valid for it (the first is the default).
ESTIMANDS = {"mean": ("t", "bootstrap_t"), "median": ("sign",), "pseudomedian": ("permutation", "wilcoxon")}
# The estimand a test estimates when the prediction declares none (files written before
# estimands existed keep this reading).
IMPLIED_ESTIMAND = {"permutation": "pseudomedian", "wilcoxon": "pseudomedian", "t": "mean",
                    "sign": "median", "bootstrap_t": "mean"}
