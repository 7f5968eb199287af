"""Issue 10, defect 11 (Host): a bad Host is the error shape."""
from __future__ import annotations

from tests.api.helpers import error_of


# --- defect 11: the Host header -----------------------------------------------------------

def test_a_disallowed_host_is_a_400_in_the_error_shape(client_a, client, db):
    for path in ("/api/v1/usage/", "/api/v1/schema/", "/api/v1/nothing/"):
        response = client_a.get(path, HTTP_HOST="evil.example.com")
        assert response.status_code == 400 and response["Content-Type"] == "application/json", path
        assert error_of(response)["code"] == "disallowed_host"
        assert "evil.example.com" not in response.content.decode()
    post = client_a.post("/api/v1/jobs/", {}, format="json", HTTP_HOST="evil.example.com")
    assert post.status_code == 400 and error_of(post)["code"] == "disallowed_host"
    console = client.get("/console/login/", HTTP_HOST="evil.example.com")
    assert console.status_code == 400 and console["Content-Type"].startswith("text/html")
