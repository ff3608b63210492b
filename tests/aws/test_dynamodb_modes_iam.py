"""The write modes as the stack's own loader role, on the IAM-enforcing server: the template
grants what a snapshot with changed_only and only_if_newer needs (conditional PutItem on the
table, the feed's state in the errors bucket, the last state removed), and nothing denies it."""

from __future__ import annotations

from typing import Any

import pytest

from batchdrop.pipeline import Pipeline

from .conftest import IamStack

pytestmark = pytest.mark.aws
MODES: dict[str, Any] = {"mode": "snapshot", "write": "changed_only", "only_if_newer": "lname"}
HEAD = "student_id,fname,lname,course\n"
DAY1 = HEAD + "A10001,Ada,b,Maths\nA10002,Alan,b,Logic\nA10003,Grace,b,Navy\nA10004,Kurt,b,Logic\n"
# A10001 unchanged, A10002 newer, A10003 older (stale), A10004 gone, A10005 new
DAY2 = HEAD + "A10001,Ada,b,Maths\nA10002,Alan,c,Logic\nA10003,Grace,a,Navy\nA10005,Edsger,b,Go\n"


def items(stack: IamStack) -> dict[str, str]:
    with stack.as_admin():
        found = stack.ddb.scan(TableName=stack.table, ConsistentRead=True)["Items"]
    return {i["student_id"]["S"]: i["lname"]["S"] for i in found}


def feed_folders(stack: IamStack) -> set[str]:
    with stack.as_admin():
        keys = stack.keys(stack.errors)
    return {k.split("/")[3] for k in keys if k.startswith("rejected/_batchdrop/feeds/")}


@pytest.mark.parametrize("iam_stack", [{"_config": MODES}], indirect=True)
def test_snapshot_changed_only_and_only_if_newer_as_the_loader_role(iam_stack: IamStack) -> None:
    stack = iam_stack
    # moto checks DynamoDB actions against "*" (the ledger's PutItem would hide a missing
    # PutIfNewer) and lets DeleteObjects through whatever its keys: these two are checked by
    # what they grant, on what
    statements = {s["Sid"]: s for s in stack.policy("Role")["Statement"]}
    newer = statements["PutIfNewer"]
    assert (newer["Action"], len(newer["Resource"])) == (["dynamodb:PutItem"], 1)
    assert newer["Resource"][0].endswith(f":table/{stack.table}")
    remove = statements["RemoveFeedState"]
    assert remove["Action"] == ["s3:DeleteObject"]
    assert remove["Resource"] == [f"arn:aws:s3:::{stack.errors}/rejected/_batchdrop/feeds/*"]
    stack.run_as("Role")
    config = stack.config(**MODES, max_deletes="50%", notify=[])

    stack.upload("incoming/day1.csv", DAY1)
    first = Pipeline(config, notifiers=[]).process("day1.csv")
    assert first.status == "loaded", first.reason
    stack.upload("incoming/day2.csv", DAY2)
    second = Pipeline(config, notifiers=[]).process("day2.csv")
    assert second.status == "loaded", second.reason
    assert items(stack) == {"A10001": "b", "A10002": "c", "A10003": "b", "A10005": "b"}
    assert (second.rows_unchanged, second.rows_stale, second.rows_deleted) == (1, 1, 1)
    (folder,) = feed_folders(stack)  # the first load's state was removed by the role
    assert folder.startswith(f"table-{stack.table}.")
