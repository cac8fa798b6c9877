# The fake-Pi cluster's fixtures for the tests below (pytest_plugins works only in the top-level
# conftest, which belongs to the harness).
from tests.fake_pi.fixtures import (  # noqa: F401
    fake_cluster,
    fresh_cluster,
    ssh_resource,
    ssh_targets,
)
