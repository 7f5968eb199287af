"""The selection API round trips (tests/api/test_selection_jobs.py) once more with the service's
artifacts in the S3 bucket: every upload, job, score download and refusal gives the same
answers as on local disk (the predictions round trips: test_predictions_on_s3.py)."""
import pytest

from tests.api.test_selection_jobs import *  # noqa: F401,F403 - the same tests, collected here

pytestmark = pytest.mark.usefixtures("service_on_s3")
