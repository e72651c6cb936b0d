"""The built-in models and datasets: importing this module registers them, once.

``harness/__init__.py`` imports it last, so any ``import harness...`` finds the registries
filled. A new built-in family is one line here (and its own file under ``harness/models/``);
a user's model registers itself from its hypothesis file and needs nothing here.
"""

import harness.data  # noqa: F401  (registers the datasets)
import harness.models  # noqa: F401  (registers the model families)
