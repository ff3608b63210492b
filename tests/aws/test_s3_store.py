"""S3Store against the moto server: listing, versions, streaming, moves that never overwrite."""

from __future__ import annotations

import os

import pytest
from boto3.s3.inject import upload_file
from boto3.s3.transfer import TransferConfig

from batchdrop.files.s3 import S3Store, parse_s3_url

from .conftest import Stack

pytestmark = pytest.mark.aws
ODD_NAMES = [
    "with space.csv",
    "c++ plus+sign.csv",
    "résumé é.csv",
    "2026/11/deep/folder.csv",
    "percent%20literal.csv",
]


def test_parse_url() -> None:
    assert parse_s3_url("s3://b") == ("b", "")
    assert parse_s3_url("s3://b/in") == ("b", "in/")
    assert parse_s3_url("s3://b/in/") == ("b", "in/")


def test_list_oldest_first_with_odd_names_and_no_folder_markers(stack: Stack) -> None:
    store = S3Store(f"s3://{stack.inbound}/incoming/", stack.config())
    for name in ODD_NAMES:
        stack.upload("incoming/" + name, "a,b\n1,2\n")
    stack.upload("incoming/folder/", b"")  # a console "folder"
    stack.upload("incoming/notes.txt", "x")
    stack.upload("elsewhere.csv", "x")
    refs = store.list([".csv"])
    assert sorted(r.name for r in refs) == sorted(ODD_NAMES)
    assert [r.modified for r in refs] == sorted(r.modified for r in refs)
    ref = store.stat("c++ plus+sign.csv")
    assert ref is not None and ref.size == 8
    assert ref.url == f"s3://{stack.inbound}/incoming/c++ plus+sign.csv"
    assert ref.version == next(r.version for r in refs if r.name == "c++ plus+sign.csv")
    assert store.stat("missing.csv") is None


def test_open_streams_the_version_it_was_given(stack: Stack) -> None:
    store = S3Store(f"s3://{stack.inbound}/", stack.config())
    body = os.urandom(3 * 1024 * 1024 + 7)
    stack.upload("big.csv", body)
    ref = store.stat("big.csv")
    assert ref is not None
    with store.open(ref) as f:
        assert f.read(10) == body[:10]
        assert f.read() == body[10:]
    stack.upload("big.csv", b"replaced")  # a new version under the same name
    with pytest.raises(FileNotFoundError, match="changed or went away"), store.open(ref) as f:
        f.read()


def test_versioned_bucket_uses_version_ids(stack: Stack) -> None:
    stack.s3.put_bucket_versioning(
        Bucket=stack.inbound, VersioningConfiguration={"Status": "Enabled"}
    )
    store = S3Store(f"s3://{stack.inbound}/", stack.config())
    first = stack.upload("v.csv", "one\n")["VersionId"]
    second = stack.upload("v.csv", "two\n")["VersionId"]
    assert [r.version for r in store.list([".csv"])] == [second]
    old = store.stat("v.csv")
    assert old is not None and old.version == second
    old_ref = type(old)(name="v.csv", size=4, version=first, modified=0, url=old.url)
    with store.open(old_ref) as f:
        assert f.read() == b"one\n"


def test_multipart_upload_is_listed_and_read_whole(stack: Stack, tmp_path) -> None:
    path = tmp_path / "multi.csv"
    data = b"x" * (11 * 1024 * 1024)
    path.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    upload_file(stack.s3, str(path), stack.inbound, "incoming/multi part.csv", Config=cfg)
    store = S3Store(f"s3://{stack.inbound}/incoming", stack.config())
    ref = store.stat("multi part.csv")
    assert ref is not None and ref.version.endswith("-3") and ref.size == len(data)
    with store.open(ref) as f:
        total = 0
        while chunk := f.read(1 << 20):
            total += len(chunk)
    assert total == len(data)


def test_move_copies_then_deletes_and_never_overwrites(stack: Stack) -> None:
    config = stack.config()
    inbound = S3Store(f"s3://{stack.inbound}/incoming/", config)
    archive = S3Store(f"s3://{stack.archive}/", config)
    stack.upload("2026/students.csv", "taken\n", bucket=stack.archive)
    stack.upload("incoming/2026/students.csv", "new\n")
    ref = inbound.stat("2026/students.csv")
    assert ref is not None
    url = inbound.move(ref, archive)
    assert url.startswith(f"s3://{stack.archive}/2026/students-") and url.endswith(".csv")
    assert inbound.stat("2026/students.csv") is None
    keys = stack.keys(stack.archive)
    assert len(keys) == 2 and "2026/students.csv" in keys
    taken = stack.s3.get_object(Bucket=stack.archive, Key="2026/students.csv")["Body"].read()
    assert taken == b"taken\n"
    moved = stack.s3.get_object(Bucket=stack.archive, Key=url.split("/", 3)[3])["Body"].read()
    assert moved == b"new\n"


def test_interrupted_move_is_finished_without_a_second_copy(stack: Stack) -> None:
    config = stack.config()
    inbound = S3Store(f"s3://{stack.inbound}/", config)
    archive = S3Store(f"s3://{stack.archive}/", config)
    stack.upload("name with space.csv", "a\n")
    ref = inbound.stat("name with space.csv")
    assert ref is not None
    head = inbound._head("name with space.csv")
    assert head is not None
    first = archive._copy_in(inbound, ref, head, ref.name)  # the copy, then a "crash"
    assert inbound.move(ref, archive) == first
    assert stack.keys(stack.archive) == ["name with space.csv"]
    assert stack.keys(stack.inbound) == []


def test_move_does_not_delete_a_newer_upload(stack: Stack) -> None:
    config = stack.config()
    inbound = S3Store(f"s3://{stack.inbound}/", config)
    archive = S3Store(f"s3://{stack.archive}/", config)
    stack.upload("f.csv", "old\n")
    ref = inbound.stat("f.csv")
    assert ref is not None
    stack.upload("f.csv", "newer\n")
    with pytest.raises(FileNotFoundError):
        inbound.move(ref, archive)
    assert stack.s3.get_object(Bucket=stack.inbound, Key="f.csv")["Body"].read() == b"newer\n"


def test_multipart_copy_above_threshold_keeps_bytes_and_metadata(stack: Stack) -> None:
    config = stack.config()
    inbound = S3Store(f"s3://{stack.inbound}/", config)
    archive = S3Store(f"s3://{stack.archive}/done/", config)
    archive.copy_threshold = 5 * 1024 * 1024  # as if the file were over 5 GB
    archive.copy_part_size = 5 * 1024 * 1024
    data = os.urandom(12 * 1024 * 1024)
    stack.upload("huge.csv", data)
    ref = inbound.stat("huge.csv")
    assert ref is not None
    url = inbound.move(ref, archive)
    assert url == f"s3://{stack.archive}/done/huge.csv"
    head = stack.s3.head_object(Bucket=stack.archive, Key="done/huge.csv")
    assert head["ETag"].strip('"').endswith("-3")  # copied in parts
    assert head["Metadata"]["batchdrop-source"] == ref.url
    body = stack.s3.get_object(Bucket=stack.archive, Key="done/huge.csv")["Body"].read()
    assert body == data


def test_put_never_overwrites(stack: Stack, tmp_path) -> None:
    store = S3Store(f"s3://{stack.errors}/rejected/", stack.config())
    report = tmp_path / "r.csv"
    report.write_text("line,column\n2,x\n")
    first = store.put("a b.rejected.csv", str(report), "text/csv")
    second = store.put("a b.rejected.csv", str(report), "text/csv")
    assert first == f"s3://{stack.errors}/rejected/a b.rejected.csv"
    assert second != first and second.endswith(".rejected.csv")
    assert len(stack.keys(stack.errors)) == 2
    head = stack.s3.head_object(Bucket=stack.errors, Key="rejected/a b.rejected.csv")
    assert head["ContentType"] == "text/csv"


def test_put_above_threshold_goes_up_in_parts_and_never_overwrites(stack: Stack, tmp_path) -> None:
    store = S3Store(f"s3://{stack.errors}/rejected/", stack.config())
    store.put_threshold = 1024 * 1024  # as if the report were over 64 MB
    data = os.urandom(9 * 1024 * 1024)  # above boto3's 8 MB part size: two parts
    report = tmp_path / "big.rejected.csv"
    report.write_bytes(data)
    first = store.put("big.rejected.csv", str(report), "text/csv")
    second = store.put("big.rejected.csv", str(report), "text/csv")
    assert first == f"s3://{stack.errors}/rejected/big.rejected.csv" and second != first
    head = stack.s3.head_object(Bucket=stack.errors, Key="rejected/big.rejected.csv")
    assert head["ETag"].strip('"').endswith("-2") and head["ContentType"] == "text/csv"
    body = stack.s3.get_object(Bucket=stack.errors, Key="rejected/big.rejected.csv")["Body"]
    assert body.read() == data


def test_a_broken_read_resumes_where_it_stopped(stack: Stack) -> None:
    from botocore.exceptions import ResponseStreamingError

    store = S3Store(f"s3://{stack.inbound}/", stack.config())
    data = os.urandom(2 * 1024 * 1024)
    stack.upload("flaky.csv", data)
    ref = store.stat("flaky.csv")
    assert ref is not None
    f = store.open(ref)
    raw = f.raw  # type: ignore[attr-defined]

    class Breaks:
        def __init__(self, body: object) -> None:
            self.body, self.sent = body, 0

        def read(self, n: int) -> bytes:
            if self.sent > 300_000:
                raise ResponseStreamingError(error="connection reset")
            chunk = self.body.read(min(n, 100_000))  # type: ignore[attr-defined]
            self.sent += len(chunk)
            return chunk  # type: ignore[no-any-return]

        def close(self) -> None:
            self.body.close()  # type: ignore[attr-defined]

    raw.body = Breaks(raw.body)
    with f:
        assert f.read() == data
