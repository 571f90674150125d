"""schemathesis generates requests from the published OpenAPI spec: no 5xx, ever."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from serving_fixtures import live

from lmops.serving.app import build_app
from lmops.serving.keys import ApiKeys, hash_key
from lmops.serving.metering import UsageMeter
from lmops.serving.settings import ServeSettings

KEY = "lmops-sk-fuzz"


@pytest.fixture(scope="module")
def api_schema(model_dir, tmp_path_factory):
    # A small max_tokens limit keeps generated requests cheap to answer.
    app = build_app(
        ServeSettings(
            model=str(model_dir), max_tokens_limit=4, default_max_tokens=2, allow_unsigned=True
        ),
        keys=ApiKeys({"fuzz": hash_key(KEY)}, {}),
        meter=UsageMeter(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'usage.db'}"),
    )
    with live(app) as url:
        yield schemathesis.openapi.from_url(url + "/openapi.json")


def test_no_server_errors(api_schema):
    # schemathesis' pytest plugin does not load under this pytest; its Python API does.
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/completions", "/v1/chat/completions"}
    auth = {"Authorization": f"Bearer {KEY}"}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            for headers in (auth, {}):
                case.call_and_validate(headers=headers, checks=[not_a_server_error])
            if isinstance(case.body, dict):
                # Past the model check too: a random model name stops at the 404.
                case.body["model"] = "tiny-lm"
                case.call_and_validate(headers=auth, checks=[not_a_server_error])

        fuzz()
