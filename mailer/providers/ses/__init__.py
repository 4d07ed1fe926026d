"""Amazon SES: bounce and complaint notifications through SNS, their signatures verified.

mailer sends nothing through SES itself (use its SMTP interface with the smtp backend)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mailer.core.config import Section, setting
from mailer.providers.registry import Provider, Receiver


@dataclass(frozen=True)
class SesSettings(Section):
    """Amazon SES events through SNS (POST /webhooks/ses)."""

    TABLE: ClassVar[tuple[str, ...]] = ("webhooks", "ses")

    topic_arn: str = setting("")
    """The only SNS topic accepted, and whose subscription is confirmed; empty: any topic is
    accepted but none confirmed (confirm it in the AWS console)."""
    sns_hosts: str = setting("sns.*.amazonaws.com")
    """Hosts of SigningCertURL and SubscribeURL, space-separated; `*` is one DNS label."""
    ca_file: Path | None = setting(None)
    """Certificates to trust instead of the system's when fetching from SNS (a test's own CA);
    empty: the system's."""


def receiver(settings: SesSettings) -> Receiver:
    from mailer.providers.ses import webhook

    trust = webhook.Trust(settings.topic_arn, settings.sns_hosts)
    certificates = webhook.Certificates(settings.ca_file)  # kept: it caches SNS certificates
    return lambda incoming, now: webhook.receive(incoming, trust, certificates)


PROVIDER = Provider(name="ses", settings=SesSettings, webhook="ses", receiver=receiver)
