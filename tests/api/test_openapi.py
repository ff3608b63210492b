"""The published OpenAPI document, and a schemathesis run against it on both backends."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from .conftest import Api

EXAMPLES_PER_OPERATION = 25


def test_openapi_documents_400_not_422_and_typed_keys(students):
    _, api = students
    doc = api.get("/openapi.json").json()
    text = str(doc)
    assert "422" not in doc["paths"]["/items/{partition}"]["get"]["responses"]
    assert "HTTPValidationError" not in text
    one = doc["paths"]["/items/{partition}/{sort}"]["get"]
    assert set(one["responses"]) == {"200", "400", "404"}
    params = {p["name"]: p for p in one["parameters"]}
    assert params["partition"]["schema"]["type"] == "string"
    item = doc["components"]["schemas"]["Item"]
    assert item["required"] == ["student_id", "course"]
    assert item["properties"]["credits"]["anyOf"][0]["type"] == "number"


def test_integer_key_is_an_integer_parameter(keyed_items):
    _, api = keyed_items
    doc = api.get("/openapi.json").json()
    param = doc["paths"]["/items/{partition}"]["get"]["parameters"][0]
    assert param["name"] == "partition" and param["schema"]["type"] == "integer"


def _cursor_given(case: schemathesis.Case) -> bool:
    return bool(case.query and case.query.get("cursor") is not None)


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("mode", MODES)
def test_schemathesis_finds_no_failure(students, mode):
    """Every operation, generated data of both kinds, every default check."""
    _ds, api = students
    run_schemathesis(api, mode)


@pytest.mark.parametrize("mode", MODES)
def test_schemathesis_on_numeric_sort_keys(sorted_by_number, mode):
    """The same on tables whose sort key is an integer or a number: typed path parameters."""
    _sort_type, _ds, api = sorted_by_number
    run_schemathesis(api, mode)


def run_schemathesis(api: Api, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/items/{partition}",
        "/items/{partition}/{sort}",
        "/runs",
        "/runs/{run_id}",
        "/health",
    }
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    unsatisfiable: list[str] = []
    for op in operations:
        if mode is GenerationMode.NEGATIVE and not (len(op.path_parameters) + len(op.query)):
            continue  # nothing to get wrong in GET /health

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def run(case: schemathesis.Case) -> None:
            if mode is GenerationMode.POSITIVE and _cursor_given(case):
                # a cursor is opaque: a made-up one is refused, which the schema cannot say
                response = case.call(app=api.app)
                assert response.status_code == 400, response.text
                assert "cursor" in response.json()["detail"]
                case.validate_response(response, excluded_checks=[positive_data_acceptance])
            else:
                case.call_and_validate()

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # no value of a plain string path parameter is invalid: nothing negative to send
            assert mode is GenerationMode.NEGATIVE and not op.query, op.label
            unsatisfiable.append(op.path)
    # (an empty string is the only invalid value of those, and a path cannot carry one)
    assert set(unsatisfiable) <= {"/items/{partition}/{sort}", "/runs/{run_id}"}


def test_api_client_is_reused(students):
    # the in-process client used above reaches the same app as the fixture
    _, api = students
    assert isinstance(api, Api) and api.get("/health").status_code == 200
