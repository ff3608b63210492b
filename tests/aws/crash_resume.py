"""Load one inbound file and die like kill -9 at a chosen point of a checkpointed run:
``python crash_resume.py CONFIG NAME POINT N``.

POINT is where (the Nth time it is reached): ``after-delta`` (a segment's state object stored,
its checkpoint not yet recorded), ``after-checkpoint`` (recorded), ``mid-write`` (after a
BatchWriteItem request), ``after-final`` (a pass's last checkpoint), ``mid-delete`` (after a
snapshot's BatchWriteItem of deletes), ``before-record`` (every write and delete done, the run
not recorded), ``after-commit`` (rows committed, file not moved). Before dying it prints the
rows it handed to the table, so the test can measure the work the next run repeats. os._exit
skips every cleanup, as a killed process would.
"""

import os
import sys

from batchdrop import checkpoint
from batchdrop.config import load_config
from batchdrop.pipeline import Pipeline
from batchdrop.tables import dynamodb

config_path, name, point, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
seen = [0]
written = [0]


def reached(where: str) -> None:
    if where == point:
        seen[0] += 1
        if seen[0] == nth:
            print(f"written={written[0]}", flush=True)
            os._exit(137)


write = dynamodb.DynamoLoad.write


def counting_write(self, rows, lines):  # type: ignore[no-untyped-def]
    out = write(self, rows, lines)
    self._drain()  # the rows counted are in the table
    written[0] += len(rows)
    reached("mid-write")
    return out


dynamodb.DynamoLoad.write = counting_write  # type: ignore[method-assign]

save = checkpoint.Checkpoints.save


def saving(self, delta):  # type: ignore[no-untyped-def]
    put = self.state.put

    def put_then(run_id, object_name, data):  # type: ignore[no-untyped-def]
        put(run_id, object_name, data)
        if not delta.final:
            reached("after-delta")

    self.state.put = put_then
    try:
        save(self, delta)
    finally:
        self.state.put = put
    reached("after-final" if delta.final else "after-checkpoint")


checkpoint.Checkpoints.save = saving  # type: ignore[method-assign]

commit = dynamodb.DynamoLoad.commit


def commit_then(self, receipt):  # type: ignore[no-untyped-def]
    commit(self, receipt)
    reached("after-commit")


dynamodb.DynamoLoad.commit = commit_then  # type: ignore[method-assign]

send = dynamodb.DynamoLoad._send


def sending(self, items, delete=False, *rest):  # type: ignore[no-untyped-def]
    send(self, items, delete, *rest)
    if delete:
        reached("mid-delete")


dynamodb.DynamoLoad._send = sending  # type: ignore[method-assign]

record = dynamodb.DynamoLedger.record


def recording(self, claim, state, receipt):  # type: ignore[no-untyped-def]
    if state == "committed":
        reached("before-record")
    record(self, claim, state, receipt)


dynamodb.DynamoLedger.record = recording  # type: ignore[method-assign]

receipt = Pipeline(load_config(config_path)).process(name)
print(f"written={written[0]} status={receipt.status}", flush=True)
