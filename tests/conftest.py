import os

from hypothesis import HealthCheck, settings

# dev: random examples, a few more of them; ci: derandomised and without deadlines, so a
# CI run is repeatable and a slow machine does not fail it.
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
