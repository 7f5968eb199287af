"""The predictions API round trips (tests/api/test_predictions_api.py) once more with the
service's artifacts in the S3 bucket."""
import pytest

from tests.api.test_predictions_api import *  # noqa: F401,F403 - the same tests, collected here

pytestmark = pytest.mark.usefixtures("service_on_s3")
