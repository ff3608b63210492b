"""The state location on S3, as the loader role holds it: objects of a run below
``<errors prefix>_batchdrop/state/<run_id>/``, nothing else of the errors bucket deletable; the
stack's errors bucket expires what a run abandoned.

The role's policy is the template's, resolved to the test's resources (``iam_stack``), with the
run state's statements as ``deploy/policy.py`` makes them for the errors location.
"""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
import yaml
from botocore.stub import Stubber
from cfnlint.api import ManualArgs, lint

from batchdrop.aws import clients
from batchdrop.deploy.policy import ref, run_state_statements
from batchdrop.deploy.resources import STATE_EXPIRY_DAYS, bucket
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.template import build_template, render, to_yaml
from batchdrop.errors import ConfigError, TransientError
from batchdrop.state import S3State, open_state

from .conftest import IamStack, Stack, template_config
from .iam import create_user, without

pytestmark = pytest.mark.aws
RUN = "20261127T084730.123Z-3f9a1c"
#: the errors location's prefix in ``IamStack.config`` and ``template_config``
ERRORS_PREFIX = "rejected/"


def loader_policy(stack: IamStack) -> dict[str, Any]:
    """The template's loader policy, with the run state's statements for this errors location."""
    policy = stack.policy("Role")
    assert stack.resolve is not None
    state = stack.resolve(run_state_statements(ref("ErrorsBucket"), ERRORS_PREFIX))
    have = {st["Sid"] for st in policy["Statement"]}
    policy["Statement"] += [st for st in state if st["Sid"] not in have]
    return policy


def act_as(stack: IamStack, policy: dict[str, Any]) -> None:
    """From now on batchdrop signs as a new user holding exactly ``policy``."""
    assert stack.server is not None and stack.monkeypatch is not None
    stack.users += 1
    name = f"state-{stack.suffix}-{stack.users}"
    key, secret = create_user(stack.server.client("iam"), name, policy)
    stack.monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    stack.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    clients.clear_cache()


def test_the_loader_role_puts_gets_lists_and_drops_a_runs_state(iam_stack: IamStack) -> None:
    st = iam_stack
    act_as(st, loader_policy(st))
    state = open_state(st.config())
    assert state.url == f"s3://{st.errors}/rejected/_batchdrop/state"

    state.put(RUN, "validate-000001.delta", b"second")
    state.put(RUN, "validate-000000.delta", b"\x00first")
    state.put(RUN, "validate-000001.delta", b"second, again")  # overwrites
    state.put("other-run", "validate-000000.delta", b"kept")
    assert state.get(RUN, "validate-000001.delta") == b"second, again"
    assert state.names(RUN) == ["validate-000000.delta", "validate-000001.delta"]
    with pytest.raises(FileNotFoundError, match="no such state object"):
        state.get(RUN, "write-000000.delta")

    state.drop(RUN)
    assert state.names(RUN) == []
    state.drop(RUN)  # nothing left: fine
    assert st.keys(st.errors) == ["rejected/_batchdrop/state/other-run/validate-000000.delta"]


def test_the_loader_role_deletes_nothing_of_the_errors_bucket_but_run_state(
    iam_stack: IamStack,
) -> None:
    st = iam_stack
    for key in (
        "rejected/students.rejected.csv",  # a report: errors outlive every run
        "_batchdrop/state/run/x",  # state of another errors location (the bucket's root)
        f"rejected/_batchdrop/state/{RUN}/x",
    ):
        st.upload(key, b"x", bucket=st.errors)
    act_as(st, loader_policy(st))
    s3 = clients.client("s3")
    for key in ("rejected/students.rejected.csv", "_batchdrop/state/run/x"):
        with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
            s3.delete_object(Bucket=st.errors, Key=key)
    s3.delete_object(Bucket=st.errors, Key=f"rejected/_batchdrop/state/{RUN}/x")
    assert st.keys(st.errors) == ["_batchdrop/state/run/x", "rejected/students.rejected.csv"]


def test_without_run_state_a_drop_is_refused_naming_the_action_and_the_key(
    iam_stack: IamStack,
) -> None:
    st = iam_stack
    act_as(st, without(loader_policy(st), {"RemoveRunState/s3:DeleteObject"}))
    state = open_state(st.config())
    state.put(RUN, "validate-000000.delta", b"x")
    key = f"s3://{st.errors}/rejected/_batchdrop/state/{RUN}/validate-000000.delta"
    with pytest.raises(ConfigError, match=f"refused s3:DeleteObject on {key} \\(AccessDenied\\)"):
        state.drop(RUN)


def test_names_skip_deeper_keys_and_bad_names_never_reach_s3(stack: Stack) -> None:
    state = open_state(stack.config())
    state.put(RUN, "a", b"1")
    stack.upload(f"rejected/_batchdrop/state/{RUN}/deeper/b", b"2", bucket=stack.errors)
    stack.upload(f"rejected/_batchdrop/state/{RUN}x/c", b"3", bucket=stack.errors)
    assert state.names(RUN) == ["a"]
    for call in (
        lambda: state.put(RUN, "../../students.rejected.csv", b"x"),
        lambda: state.get("..", "a"),
        lambda: state.drop("a/b"),
    ):
        with pytest.raises(ValueError, match="is not a state name"):
            call()
    assert len(stack.keys(stack.errors)) == 3


# --- errors, precisely (botocore's Stubber) ---------------------------------------------------


def stubbed() -> tuple[S3State, Stubber]:
    client = botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    return S3State("s3://err/rejected", client=client), Stubber(client)


@pytest.mark.parametrize(
    "code, status, error",
    [
        ("SlowDown", 503, TransientError),
        ("InternalError", 500, TransientError),
        ("AccessDenied", 403, ConfigError),
        ("NoSuchBucket", 404, ConfigError),
    ],
)
def test_s3_errors_are_translated(code: str, status: int, error: type[Exception]) -> None:
    state, stub = stubbed()
    key = f"rejected/_batchdrop/state/{RUN}/a"
    with stub:
        for op in ("put_object", "get_object", "list_objects_v2"):
            stub.add_client_error(op, service_error_code=code, http_status_code=status)
        with pytest.raises(error, match=f"s3:PutObject.*s3://err/{key}|s3://err/{key}"):
            state.put(RUN, "a", b"x")
        with pytest.raises(error, match=f"s3://err/{key}"):
            state.get(RUN, "a")
        with pytest.raises(error, match=f"rejected/_batchdrop/state/{RUN}/"):
            state.names(RUN)
    if code == "AccessDenied":
        state, stub = stubbed()
        with stub:
            stub.add_client_error("get_object", service_error_code=code, http_status_code=403)
            with pytest.raises(ConfigError, match="the role needs s3:GetObject on "):
                state.get(RUN, "a")


def test_drop_deletes_in_batches_of_a_thousand_and_reports_a_key_it_could_not_delete() -> None:
    state, stub = stubbed()
    folder = f"rejected/_batchdrop/state/{RUN}/"
    keys = [f"{folder}{n:06d}.delta" for n in range(1001)]
    with stub:
        stub.add_response(
            "list_objects_v2",
            {
                "Contents": [{"Key": k} for k in keys[:600]],
                "IsTruncated": True,
                "NextContinuationToken": "t",
            },
            {"Bucket": "err", "Prefix": folder},
        )
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": k} for k in keys[600:]], "IsTruncated": False},
            {"Bucket": "err", "Prefix": folder, "ContinuationToken": "t"},
        )
        for batch in (keys[:1000], keys[1000:]):
            stub.add_response(
                "delete_objects",
                {"Errors": [{"Key": keys[1000], "Code": "AccessDenied", "Message": "no"}]}
                if len(batch) == 1
                else {},
                {
                    "Bucket": "err",
                    "Delete": {"Objects": [{"Key": k} for k in batch], "Quiet": True},
                },
            )
        with pytest.raises(ConfigError, match=f"s3:DeleteObject on s3://err/{keys[1000]}"):
            state.drop(RUN)
        stub.assert_no_pending_responses()


# --- the stack --------------------------------------------------------------------------------


def test_the_errors_bucket_expires_run_state_and_the_template_stays_valid() -> None:
    """The errors bucket as ``resources.bucket`` makes it, in the stack's template."""
    config = template_config()
    settings = deploy_settings(config)
    template = build_template(config, settings)
    made = bucket(settings, name=None, errors_prefix=ERRORS_PREFIX)
    rules = made["Properties"]["LifecycleConfiguration"]["Rules"]
    expiry = [r for r in rules if r["Id"] == "expire-abandoned-run-state"]
    assert expiry == [
        {
            "Id": "expire-abandoned-run-state",
            "Status": "Enabled",
            "Prefix": "rejected/_batchdrop/state/",
            "ExpirationInDays": STATE_EXPIRY_DAYS,
        }
    ]
    assert STATE_EXPIRY_DAYS == 14
    assert len(rules) == 2  # and uploads left incomplete are still aborted
    versioned = bucket(
        deploy_settings(template_config(versioning=True)), name=None, errors_prefix=""
    )
    (rule,) = [
        r
        for r in versioned["Properties"]["LifecycleConfiguration"]["Rules"]
        if r["Id"] == "expire-abandoned-run-state"
    ]
    assert rule["Prefix"] == "_batchdrop/state/"
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert "expire-abandoned-run-state" not in str(bucket(settings, name=None))

    assert template["Resources"]["ErrorsBucket"] == made
    matches = lint(to_yaml(template), config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_the_template_gives_the_stack_run_state_and_its_expiry() -> None:
    template = yaml.safe_load(render(template_config()))
    res = template["Resources"]
    rules = res["ErrorsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [r["Prefix"] for r in rules if r["Id"] == "expire-abandoned-run-state"] == [
        "rejected/_batchdrop/state/"
    ]
    for other in ("InboundBucket", "ArchiveBucket"):
        assert "expire-abandoned-run-state" not in str(res[other])
    statements = res["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {st["Sid"]: st for st in statements}
    want = run_state_statements(ref("ErrorsBucket"), ERRORS_PREFIX)
    assert [by_sid.get(st["Sid"]) for st in want] == want
