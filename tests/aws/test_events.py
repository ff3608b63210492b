"""The captured event shapes → (bucket, key, version) records, every key URL-decoded."""

from __future__ import annotations

import json

from batchdrop.aws.events import ObjectCreated, parse_event

from .conftest import event_file


def test_direct_put_decodes_plus_as_space() -> None:
    parsed = parse_event(event_file("s3_put.json"))
    assert parsed.kind == "s3"
    assert parsed.objects == [
        ObjectCreated(
            bucket="students-inbound",
            key="incoming/students 2026.csv",
            version=None,
            etag="d41d8cd98f00b204e9800998ecf8427e",
            size=1305,
            event="ObjectCreated:Put",
        )
    ]


def test_multipart_upload_counts_and_unicode_key_is_decoded() -> None:
    (obj,) = parse_event(event_file("s3_multipart.json")).objects
    assert obj.event == "ObjectCreated:CompleteMultipartUpload"
    assert obj.key == "2026/11/résumé étudiants (2).csv"
    assert obj.version == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert obj.size == 104857600


def test_percent_encoded_plus_stays_plus_and_removals_are_ignored() -> None:
    parsed = parse_event(event_file("s3_encoded_key.json"))
    assert [o.key for o in parsed.objects] == ["c++ class list=final%.csv"]
    (msg,) = parsed.messages
    assert msg.ignored == ["ObjectRemoved:Delete is not an ObjectCreated event"]


def test_every_record_is_decoded_not_only_the_first() -> None:
    event = event_file("s3_put.json")
    second = json.loads(json.dumps(event["Records"][0]))
    second["s3"]["object"]["key"] = "incoming/second+file%21.csv"
    event["Records"].append(second)
    assert [o.key for o in parse_event(event).objects] == [
        "incoming/students 2026.csv",
        "incoming/second file!.csv",
    ]


def test_test_event_is_ignored() -> None:
    parsed = parse_event(event_file("s3_test_event.json"))
    assert parsed.kind == "test"
    assert parsed.objects == []


def test_eventbridge_object_created() -> None:
    parsed = parse_event(event_file("eventbridge.json"))
    assert parsed.kind == "eventbridge"
    assert parsed.objects == [
        ObjectCreated(
            bucket="students-inbound",
            key="incoming/spring term.csv",
            version="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            etag="b1946ac92492d2347c6235b4d2611184",
            size=5342,
            event="ObjectCreated:PutObject",
        )
    ]


def test_eventbridge_other_detail_types_are_ignored() -> None:
    event = event_file("eventbridge.json")
    event["detail-type"] = "Object Deleted"
    parsed = parse_event(event)
    assert parsed.objects == []
    assert parsed.messages[0].ignored == ["EventBridge Object Deleted is not Object Created"]


def test_sqs_messages_keep_their_ids_test_events_and_junk_apart() -> None:
    parsed = parse_event(event_file("sqs_s3.json"))
    assert parsed.kind == "sqs"
    put, test, junk = parsed.messages
    assert put.id.endswith("1") and [o.key for o in put.objects] == ["incoming/students 2026.csv"]
    assert test.objects == [] and test.ignored == ["s3:TestEvent"] and test.error is None
    assert junk.objects == [] and junk.error and "not JSON" in junk.error


def test_sqs_message_with_sns_envelope() -> None:
    inner = event_file("s3_put.json")
    envelope = {"Type": "Notification", "MessageId": "x", "Message": json.dumps(inner)}
    event = event_file("sqs_s3.json")
    event["Records"] = event["Records"][:1]
    event["Records"][0]["body"] = json.dumps(envelope)
    assert [o.key for o in parse_event(event).objects] == ["incoming/students 2026.csv"]


def test_sqs_wrapped_eventbridge_event() -> None:
    event = event_file("sqs_s3.json")
    event["Records"] = event["Records"][:1]
    event["Records"][0]["body"] = json.dumps(event_file("eventbridge.json"))
    parsed = parse_event(event)
    assert parsed.kind == "sqs"
    assert [o.key for o in parsed.objects] == ["incoming/spring term.csv"]


def test_not_an_event() -> None:
    parsed = parse_event({"hello": "world"})
    assert parsed.kind == "unknown"
    assert parsed.messages[0].error and "hello" in parsed.messages[0].error
