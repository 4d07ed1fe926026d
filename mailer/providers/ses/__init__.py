"""Amazon SES: bounce and complaint notifications through SNS, their signatures verified.

mailer sends nothing through SES itself (use its SMTP interface with the smtp backend)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mailer.core.config import Section, setting
from mailer.providers.registry import Provider, Receiver

SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


def topic_arns(value: str) -> str:
    """SNS topic ARNs, separated by spaces: each must be one, so that a typo refuses nothing."""
    for arn in value.split():
        if not SNS_TOPIC.fullmatch(arn):
            raise ValueError(
                f"'{arn}' is not an SNS topic ARN, like arn:aws:sns:eu-west-1:123456789012:bounces"
            )
    return value


@dataclass(frozen=True)
class SesSettings(Section):
    """Amazon SES events through SNS (POST /webhooks/ses)."""

    TABLE: ClassVar[tuple[str, ...]] = ("webhooks", "ses")

    topic_arn: str = setting("", check=topic_arns)
    """The SNS topics accepted, and whose subscriptions are confirmed (ARNs separated by
    spaces); empty: the webhook is not served (404), since a valid signature proves only that
    SNS sent a message, not that the topic is ours."""
    sns_hosts: str = setting("sns.*.amazonaws.com")
    """Hosts of SigningCertURL and SubscribeURL, space-separated; `*` is one DNS label."""
    ca_file: Path | None = setting(None)
    """Certificates to trust instead of the system's when fetching from SNS (a test's own CA);
    empty: the system's."""

    @property
    def topic_arns(self) -> frozenset[str]:
        return frozenset(self.topic_arn.split())


def receiver(settings: SesSettings) -> Receiver:
    from mailer.providers.ses import webhook

    trust = webhook.Trust(settings.topic_arns, settings.sns_hosts)
    certificates = webhook.Certificates(settings.ca_file)  # kept: it caches SNS certificates
    return lambda incoming, now: webhook.receive(incoming, trust, certificates)


def unsafe(settings: SesSettings) -> str:
    """An SES webhook set up but for its topic would accept any SNS topic's genuinely signed
    messages; left untouched, it is simply not served."""
    if settings == SesSettings() or settings.topic_arns:
        return ""
    return (
        "[webhooks.ses] topic_arn is empty, so POST /webhooks/ses would accept messages from "
        "anybody's SNS topic: set it to the ARN of your topic (several separated by spaces), or "
        "remove the other [webhooks.ses] settings"
    )


PROVIDER = Provider(
    name="ses", settings=SesSettings, webhook="ses", receiver=receiver, unsafe=unsafe
)
