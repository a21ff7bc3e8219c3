"""HttpModel against the real local inference server and a closed port."""

import pytest

from local.inference_server import serve
from local.stack import free_port
from returnguard.aws.model_client import HttpModel, ModelUnavailable
from returnguard.features import FEATURES


def test_http_model_scores_and_fails_cleanly(trained_model) -> None:
    server = serve(str(trained_model[0]))
    try:
        vector = {f.name: f.default for f in FEATURES}
        result = HttpModel(server.url).score(vector)
        assert 0.0 <= result.score <= 1.0 and set(result.contributions) == set(vector)
        with pytest.raises(ModelUnavailable):
            HttpModel(server.url).score({"nonsense": 1.0})  # the server answers 4xx
    finally:
        server.stop()
    with pytest.raises(ModelUnavailable):
        HttpModel(f"http://127.0.0.1:{free_port()}", timeout_s=1.0).score(vector)
