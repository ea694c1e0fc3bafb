"""SNS notifications: a readable text for people (e-mail, chat) followed by the JSON for machines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

_SUBJECT_LIMIT = 100  # SNS rejects longer subjects


def subject_line(text: str) -> str:
    """SNS subjects are one line of printable ASCII, at most 100 characters."""
    printable = "".join(c if 32 <= ord(c) < 127 else "?" for c in " ".join(text.split()))
    return printable if len(printable) <= _SUBJECT_LIMIT else printable[: _SUBJECT_LIMIT - 3] + "..."


def publish(
    sns: SNSClient,
    topic_arn: str,
    subject: str,
    lines: list[str],
    details: dict[str, Any],
    attributes: dict[str, str] | None = None,
) -> str:
    """Publish one notification; returns the SNS message id.

    ``attributes`` become SNS message attributes, so subscriptions can filter (e.g. only
    ``escalated=true`` to a pager).
    """
    message = "\n".join(lines) + "\n\n" + json.dumps(details, indent=2, sort_keys=True, default=str)
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=subject_line(subject),
        Message=message,
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in (attributes or {}).items()
        },
    )
    return str(response["MessageId"])
