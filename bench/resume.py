"""Resume bench: ``python bench/resume.py [--rows 500000] [--budget 20] [--only NAMES]``.

What checkpoints cost and what a resumed run repeats, for one generated students CSV (random key
order) going from an S3 inbound into DynamoDB, each contender on a moto server of its own
(a real ``moto.server`` subprocess on 127.0.0.1, spoken to over HTTP), all in the same run:

- ``straight``: ``Pipeline(config).process`` with checkpoints out of the way (``every_bytes``
  beyond the file, ``every_seconds`` 10**6): the floor;
- ``checkpointed``: the default checkpoint settings (64 MB / 30 s);
- ``checkpointed-1mb``: a checkpoint every MB, to see what each one costs;
- ``handler``: the Lambda handler driven through the stack's events queue as Lambda's SQS event
  source drives it (S3 notification → queue; receive, ``Runtime.handle``, delete unless failed),
  each invocation given ``--budget`` seconds of work: a paused file comes back as a new message;
- ``kill``: a child process killed with ``os._exit`` after half the write requests, then a second
  process (a new interpreter, as a new container) that finishes the run.

Every contender is checked afterwards: items in the table == rows, one receipt on the topic,
the file archived and gone from inbound, no state left behind. Wall times are printed as ratios
to the first contender's. Checkpoints are ``Checkpoints.save`` calls (one state object put and
one ``Ledger.checkpoint`` each); rows written twice are the rows handed to the table beyond the
file's. A benchmark is a measurement, not a test: the exit status is 0 unless a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if not any(Path(p, "batchdrop").is_dir() for p in sys.path if p):
    sys.path.insert(0, str(ROOT / "src"))

import gen  # noqa: E402
from dynamo_measure import RequestCounter, fresh_moto  # noqa: E402
from resume_stack import NAME, make_stack, parse, settings, upload, verify  # noqa: E402

CONTENDERS = ("straight", "checkpointed", "checkpointed-1mb", "handler", "kill")
#: the shortest lease the default checkpoint settings allow (twice every_seconds): the kill
#: contender's second process waits for the dead run's lease to lapse
KILL_CLAIM_TTL = 60


# --- counting -------------------------------------------------------------------------------


@dataclass
class Tally:
    """Checkpoints saved (by pass) and rows handed to the table, in this process."""

    checkpoints: dict[str, int] = field(default_factory=dict)
    write_lines: list[int] = field(default_factory=list)  # where each write-pass segment ended
    written: int = 0
    write_calls: int = 0
    on_write: Callable[[Any], None] | None = None

    def install(self) -> None:
        from batchdrop import checkpoint
        from batchdrop.tables import dynamodb

        save, write = checkpoint.Checkpoints.save, dynamodb.DynamoLoad.write
        tally = self

        def saving(self: Any, delta: Any) -> None:
            save(self, delta)
            tally.checkpoints[delta.stage] = tally.checkpoints.get(delta.stage, 0) + 1
            if delta.stage == "write" and not delta.final:
                tally.write_lines.append(delta.end.line)

        def writing(self: Any, rows: Any, lines: Any) -> Any:
            out = write(self, rows, lines)
            tally.written += len(rows)
            tally.write_calls += 1
            if tally.on_write is not None:
                tally.on_write(self)
            return out

        checkpoint.Checkpoints.save = saving  # type: ignore[method-assign]
        dynamodb.DynamoLoad.write = writing  # type: ignore[method-assign]

    def reset(self) -> None:
        self.checkpoints, self.write_lines = {}, []
        self.written = self.write_calls = 0

    @property
    def saved(self) -> int:
        return sum(self.checkpoints.values())

    def passes(self) -> str:
        return ", ".join(f"{stage} {n}" for stage, n in self.checkpoints.items())


@dataclass
class Outcome:
    name: str
    wall_s: float
    checkpoints: int
    runs: int  # invocations or processes
    twice: int  # rows handed to the table beyond the file's
    requests: int
    ok: bool
    check: str
    command: str
    notes: list[str] = field(default_factory=list)


# --- the contenders -------------------------------------------------------------------------


def in_process(
    name: str,
    path: Path,
    rows: int,
    counter: RequestCounter,
    tally: Tally,
    command: str,
    checkpoint: dict[str, Any],
    claim_ttl: int | None = None,
) -> Outcome:
    """``Pipeline(config).process`` once, with the given checkpoint settings."""
    from batchdrop.pipeline import Pipeline

    with fresh_moto() as endpoint:
        st = make_stack(endpoint)
        upload(st, path)
        aws = {"claim_ttl_seconds": claim_ttl} if claim_ttl else {}
        config = parse(settings(endpoint, st.topic, checkpoint=checkpoint, aws=aws))
        tally.reset()
        sent0 = sum(counter.sent.values())
        t0 = time.perf_counter()
        receipt = Pipeline(config).process(NAME)
        wall = time.perf_counter() - t0
        requests = sum(counter.sent.values()) - sent0
        ok, check = verify(st, rows, path)
        out = Outcome(
            name, wall, tally.saved, 1, tally.written - rows, requests, ok, check, command
        )
        out.notes.append(f"checkpoints by pass: {tally.passes()}; status {receipt.status}")
        return out


def run_handler(
    path: Path, rows: int, budget: float, counter: RequestCounter, tally: Tally, command: str
) -> Outcome:
    """The handler with ``budget`` seconds of work per invocation, fed from the events queue
    until it is empty, each paused run coming back as a new message."""
    from batchdrop import checkpoint
    from batchdrop.aws import handler
    from batchdrop.scan import DEADLINE_MARGIN_S

    margins = checkpoint.PAUSE_MARGIN_S + DEADLINE_MARGIN_S
    # a file starts with ``budget`` seconds left beyond what the engine keeps for itself
    handler.MIN_START = margins
    handler.logger.setLevel("WARNING")
    with fresh_moto() as endpoint:
        st = make_stack(endpoint)
        upload(st, path)
        runtime = handler.Runtime(parse(settings(endpoint, st.topic)))
        tally.reset()
        sent0 = sum(counter.sent.values())
        invocations, statuses, took = 0, [], []
        t0 = time.perf_counter()
        end = t0
        while invocations < 10_000:
            msgs = st.sqs.receive_message(
                QueueUrl=st.events, MaxNumberOfMessages=1, WaitTimeSeconds=1
            ).get("Messages", [])
            if not msgs:
                break
            m = msgs[0]
            event = {
                "Records": [
                    {
                        "eventSource": "aws:sqs",
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "eventSourceARN": st.events_arn,
                    }
                ]
            }
            started = time.monotonic()

            def remaining(started: float = started) -> float:
                return margins + budget - (time.monotonic() - started)

            reply = runtime.handle(event, remaining)
            took.append(time.monotonic() - started)
            handler.metrics.clear_metrics()
            invocations += 1
            statuses += [r.status for r in runtime.last_results]
            if reply["batchItemFailures"]:  # back on the queue at once
                st.sqs.change_message_visibility(
                    QueueUrl=st.events, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                st.sqs.delete_message(QueueUrl=st.events, ReceiptHandle=m["ReceiptHandle"])
            end = time.perf_counter()
        wall = end - t0
        requests = sum(counter.sent.values()) - sent0
        ok, check = verify(st, rows, path)
        twice = tally.written - rows
        out = Outcome(
            "handler", wall, tally.saved, invocations, twice, requests, ok, check, command
        )
        seen = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        out.notes.append(
            f"{budget:g} s of work per invocation; results {seen}; "
            f"time inside the handler {sum(took):.1f} s, longest invocation {max(took):.1f} s; "
            f"checkpoints by pass: {tally.passes()}"
        )
        return out


def run_killed(path: Path, rows: int, size: int, command: str) -> Outcome:
    """A child process killed after half the write requests, then a second one finishing."""
    kill_at = max(1, rows // 2)
    with fresh_moto() as endpoint, tempfile.TemporaryDirectory() as tmp:
        import yaml

        st = make_stack(endpoint)
        upload(st, path)
        data = settings(endpoint, st.topic, aws={"claim_ttl_seconds": KILL_CLAIM_TTL})
        config = Path(tmp) / "batchdrop.yaml"
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        first, wall1 = child(config, kill_at)
        second, wall2 = child(config, 0)
        ok, check = verify(st, rows, path)
    if first.get("status") != "killed":
        ok, check = False, f"FAILED the first process was not killed: {first}"
    engine = first["elapsed"] + second["elapsed"]
    twice = first["written"] + second["written"] - rows
    out = Outcome(
        "kill",
        engine,
        first["checkpoints"] + second["checkpoints"],
        2,
        twice,
        first["requests"] + second["requests"],
        ok and second.get("status") == "loaded",
        check,
        command,
    )
    at = first["written"]
    marks = [line - 1 for line in first["write_lines"]]  # data rows before each checkpoint
    since = at - (marks[-1] if marks else 0)
    gaps = [b - a for a, b in zip([0, *marks], [*marks, at], strict=False)][:-1]
    interval = (
        f"{sum(gaps) / len(gaps):,.0f} rows"
        if gaps
        else f"no write checkpoint before the kill (the pass had reached row {at:,})"
    )
    out.notes += [
        f"killed after write request {first['write_calls']} ({at:,} rows in the table, half "
        f"the file: {kill_at:,}); the write pass had "
        f"{len(marks)} checkpoints before it, the last at row {marks[-1] if marks else 0:,}: "
        f"{since:,} rows since",
        f"rows written twice {twice:,} vs rows since the last checkpoint {since:,}; "
        f"mean write-pass interval {interval} (default settings: "
        f"{rows * 64_000_000 // size:,} rows by bytes, or 30 s)",
        f"engine time {first['elapsed']:.1f} s + {second['elapsed']:.1f} s; processes' wall "
        f"{wall1:.1f} s + {wall2:.1f} s (interpreter start-up included), of which the second "
        f"waited {second['waited']:.1f} s for the dead run's lease to lapse "
        f"(aws.claim_ttl_seconds {KILL_CLAIM_TTL}, not counted)",
    ]
    return out


def child(config: Path, kill_at: int) -> tuple[dict[str, Any], float]:
    """Run the child process: its report and its wall time (seen from here)."""
    me = str(Path(__file__).resolve())
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, me, "--child", str(config), str(kill_at)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
        timeout=3600,
    )
    wall = time.perf_counter() - t0
    last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        return json.loads(last), wall
    except ValueError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"child exited {proc.returncode}: {tail}") from None


def child_main(config_path: str, kill_at: int) -> int:
    """One process of the kill contender: process the file, dying like kill -9 after the
    write request that brings the rows handed to the table to ``kill_at`` (0: never). A busy
    file (the dead run's lease has not lapsed yet) is tried again each second. Prints one JSON
    line."""
    from batchdrop.config import load_config
    from batchdrop.pipeline import Pipeline
    from batchdrop.report import BUSY

    counter = RequestCounter()
    counter.install()
    tally = Tally()
    started = [time.perf_counter()]

    def report(status: str, waited: float = 0.0) -> None:
        out = {
            "status": status,
            "written": tally.written,
            "write_calls": tally.write_calls,
            "checkpoints": tally.saved,
            "write_lines": tally.write_lines,
            "elapsed": time.perf_counter() - started[0],
            "waited": waited,
            "requests": sum(counter.sent.values()),
        }
        print(json.dumps(out), flush=True)

    def on_write(load: Any) -> None:
        if kill_at and tally.written >= kill_at:
            load._drain()  # the rows counted are in the table
            report("killed")
            os._exit(137)

    tally.on_write = on_write
    tally.install()
    config = load_config(config_path)
    t0 = time.perf_counter()
    while True:
        started[0] = time.perf_counter()
        receipt = Pipeline(config).process(NAME)
        if receipt.status != BUSY:
            break
        time.sleep(1)
    report(receipt.status, started[0] - t0)
    return 0


# --- the report -----------------------------------------------------------------------------


def print_report(results: list[Outcome], rows: int, size: int, skipped: list[str]) -> None:
    print(
        f"\nResume bench: {rows:,} rows ({size / 1e6:.1f} MB, random key order), S3 inbound → "
        "DynamoDB, each contender on a fresh moto server"
    )
    print(
        f"  {'contender':<18}{'wall s':>9}{'x first':>9}{'checkpoints':>13}{'runs':>6}"
        f"{'rows twice':>12}{'requests':>10}  check"
    )
    floor = results[0].wall_s if results else 0.0
    for r in results:
        ratio = f"{r.wall_s / floor:.2f}x" if floor else "-"
        print(
            f"  {r.name:<18}{r.wall_s:>9.1f}{ratio:>9}{r.checkpoints:>13,}{r.runs:>6}"
            f"{r.twice:>12,}{r.requests:>10,}  {r.check}"
        )
    for r in results:
        for note in r.notes:
            print(f"    {r.name}: {note}")
    for why in skipped:
        print(f"  skipped: {why}")
    print("\n  reproduce each figure:")
    for r in results:
        print(f"    {r.name:<18}{r.command}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 500,000: one contender takes about 3 minutes on moto on a 2-core machine (1M: 5-7)
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument(
        "--budget", type=float, default=20.0, help="seconds of work per handler invocation"
    )
    p.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"comma-separated contenders, in the order given (of {', '.join(CONTENDERS)})",
    )
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "KILL_AT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    if args.child:
        return child_main(args.child[0], int(args.child[1]))
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in only if c not in CONTENDERS]
    if unknown:
        p.error(f"unknown contender {', '.join(unknown)}: use {', '.join(CONTENDERS)}")

    counter = RequestCounter()
    counter.install()
    tally = Tally()
    tally.install()
    results: list[Outcome] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="batchdrop-resume-bench-") as tmp:
        path = Path(tmp) / NAME
        gen.write(args.rows, path, args.seed)
        size = path.stat().st_size
        base = f"python bench/resume.py --rows {args.rows}"
        if args.seed != 20261127:
            base += f" --seed {args.seed}"
        print(
            f"resume bench: {args.rows:,} rows, {size / 1e6:.1f} MB; contenders {', '.join(only)}",
            flush=True,
        )
        off = {"every_bytes": size + 1, "every_seconds": 10**6}
        runs: dict[str, Callable[[], Outcome]] = {
            "straight": lambda: in_process(
                "straight",
                path,
                args.rows,
                counter,
                tally,
                f"{base} --only straight",
                off,
                claim_ttl=2 * 10**6,
            ),
            "checkpointed": lambda: in_process(
                "checkpointed",
                path,
                args.rows,
                counter,
                tally,
                f"{base} --only straight,checkpointed",
                {},
            ),
            "checkpointed-1mb": lambda: in_process(
                "checkpointed-1mb",
                path,
                args.rows,
                counter,
                tally,
                f"{base} --only straight,checkpointed-1mb",
                {"every_bytes": "1MB"},
            ),
            "handler": lambda: run_handler(
                path,
                args.rows,
                args.budget,
                counter,
                tally,
                f"{base} --budget {args.budget:g} --only straight,handler",
            ),
            "kill": lambda: run_killed(path, args.rows, size, f"{base} --only straight,kill"),
        }
        for name in only:
            t0 = time.perf_counter()
            try:
                results.append(runs[name]())
            except Exception as e:  # a failing contender must not hide the others' figures
                skipped.append(f"{name}: failed: {type(e).__name__}: {str(e)[:300]}")
                continue
            print(
                f"  {name}: {results[-1].wall_s:.1f} s measured, {time.perf_counter() - t0:.1f} s "
                f"with set-up and checks; {results[-1].check}",
                flush=True,
            )
    print_report(results, args.rows, size, skipped)
    return 0 if all(r.ok for r in results) and not skipped else 1


if __name__ == "__main__":
    sys.exit(main())
