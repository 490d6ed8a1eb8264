"""Fuzzing profile: a fixed budget per run in CI, a long one on demand.

``BTD_FUZZ=nightly`` (see README) runs every target for many more examples; the default
keeps the whole fuzz suite to well under a minute on a 2-core machine.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz-ci",
    max_examples=int(os.environ.get("BTD_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz-nightly",
    max_examples=int(os.environ.get("BTD_FUZZ_EXAMPLES", "50000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
FUZZ_PROFILE = "fuzz-nightly" if os.environ.get("BTD_FUZZ") == "nightly" else "fuzz-ci"
