"""Shared test configuration: Hypothesis profiles.

``ci`` (the default) keeps every property test to a few seconds on two cores;
``thorough`` runs ten times as many cases (``HYPOTHESIS_PROFILE=thorough pytest ...``);
``dev`` is a quick smoke run.  Property tests that train models ask for a
fraction of the profile's ``max_examples`` (see ``tests/test_properties.py``).
"""

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
               "print_blob": True}

settings.register_profile("ci", max_examples=40, **_COMMON)
settings.register_profile("thorough", max_examples=400, **_COMMON)
settings.register_profile("dev", max_examples=8, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
