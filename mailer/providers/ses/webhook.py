"""Amazon SES notifications, delivered by Amazon SNS: the SNS message signature is checked.

SNS signs each message with RSA: SignatureVersion 1 with SHA1withRSA, 2 with SHA256withRSA, over
a canonical text of some of its fields (`Name\\nvalue\\n` each, in a fixed order that differs for
notifications and for subscription confirmations). The certificate comes from `SigningCertURL`,
which must be an https URL on an SNS host (`sns.<region>.amazonaws.com`, nothing else: the host
patterns are a setting only so that tests can serve a certificate of their own), fetched with
certificate checks and kept for the life of the process.

A valid signature proves that SNS sent the message, not that the topic is ours: anybody can
subscribe our address to a topic of their own. So nothing is accepted before the expected topics
are known (`topic_arn`: without it the webhook is not configured, and the web layer answers 404),
other topics are refused before their signature is even checked, and a subscription confirmation
is fetched (confirming the subscription) only for those topics.

The SES notification is the SNS `Message`, as JSON: `Bounce` (bounceType Permanent is a hard
bounce; Transient and Undetermined soft), `Complaint`, `Delivery`, in either of SES's formats
(`notificationType` for notifications, `eventType` for event publishing). One event per recipient,
keeping the SES notification narrowed to that recipient.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import threading
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailer.core.events import Event, Kind, Severity
from mailer.core.json_text import text_at
from mailer.webhooks.base import (
    Incoming,
    Malformed,
    NotConfigured,
    Received,
    Refused,
    Unavailable,
    event_id,
    iso_time,
    json_body,
)

PROVIDER = "ses"
SNS_HOSTS = "sns.*.amazonaws.com"
"""Where SNS certificates and subscription URLs live; `*` is one DNS label (the region)."""
TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERTIFICATE = 64 * 1024
SES_TOPIC_TEST = "Successfully validated SNS topic for Amazon SES event publishing."


@dataclass(frozen=True)
class Trust:
    """What an SNS message must satisfy besides its signature."""

    topic_arns: frozenset[str] = frozenset()
    """The topics accepted (and confirmed); none: nothing is accepted."""
    sns_hosts: str = SNS_HOSTS
    """Host patterns (space-separated) of certificate and subscription URLs."""


def host_matcher(patterns: str) -> re.Pattern[str]:
    """`sns.*.amazonaws.com` → a regular expression matching a URL's whole host[:port], where
    `*` stands for one DNS label (letters, digits, hyphens) and nothing else is loose."""
    choices = [
        "[a-z0-9-]+".join(re.escape(part) for part in pattern.lower().split("*"))
        for pattern in patterns.split()
    ]
    return re.compile("|".join(f"(?:{c})" for c in choices) or "(?!)")


def allowed_url(url: str, hosts: str, *, certificate: bool) -> bool:
    """An https URL on an SNS host, no user name, no odd characters; a certificate's ends in
    .pem and carries no query."""
    if not url.isascii() or any(c.isspace() or c in "\\@" for c in url):
        return False
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.fragment:
        return False
    if not host_matcher(hosts).fullmatch(parts.netloc.lower()):
        return False
    if certificate:
        return parts.path.endswith(".pem") and not parts.query
    return True


class Certificates:
    """SNS signing certificates' public keys by URL, fetched once over verified https."""

    MAX_KEPT = 32

    def __init__(self, ca_file: Path | None = None, timeout: float = 10.0) -> None:
        self.verify: str | bool = str(ca_file) if ca_file else True
        self.timeout = timeout
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> str:
        """GET an SNS URL; its body as text (or Unavailable when it cannot be had)."""
        try:
            response = requests.get(
                url, timeout=self.timeout, verify=self.verify, allow_redirects=False
            )
        except requests.RequestException as error:
            raise Unavailable(f"cannot fetch from SNS: {type(error).__name__}") from None
        if response.status_code != 200:
            raise Unavailable(f"SNS answered {response.status_code}")
        return response.text

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            key = self._keys.get(url)
        if key is not None:
            return key
        key = self._load(self.get(url))
        with self._lock:
            if len(self._keys) >= self.MAX_KEPT:
                self._keys.clear()
            self._keys[url] = key
        return key

    @staticmethod
    def _load(pem: str) -> rsa.RSAPublicKey:
        if len(pem) > MAX_CERTIFICATE:
            raise Refused("the signing certificate is too large")
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise Refused("the signing certificate is not a PEM certificate") from None
        now = dt.datetime.now(dt.UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Refused("the signing certificate has expired or is not valid yet")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused("the signing certificate's key is not RSA")
        return key


def receive(incoming: Incoming, trust: Trust, certificates: Certificates) -> Received:
    if not trust.topic_arns:
        raise NotConfigured("set [webhooks.ses] topic_arn to the ARN of your SNS topic")
    message = json_body(incoming.body)
    if not isinstance(message, dict):
        raise Malformed("the body is not a JSON object")
    verify(message, incoming, trust, certificates)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        return Received(note=confirm(message, trust, certificates))
    if kind == "UnsubscribeConfirmation":
        return Received(note=f"SNS unsubscribed this endpoint from {message.get('TopicArn')}")
    return Received(events=parse(message))


def verify(
    message: dict[str, Any], incoming: Incoming, trust: Trust, certificates: Certificates
) -> None:
    """The checks that need no network first; then the certificate and the signature."""
    kind = message.get("Type")
    if kind not in TYPES:
        raise Malformed("not an SNS message (Type is not one SNS sends)")
    header = incoming.header("x-amz-sns-message-type")
    if header and header != kind:
        raise Refused("x-amz-sns-message-type does not match the message's Type")
    topic = message.get("TopicArn")
    if not isinstance(topic, str) or topic not in trust.topic_arns:
        raise Refused("the message comes from another topic than [webhooks.ses] topic_arn")
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Refused("unknown SignatureVersion (1 and 2 are known)")
    url = message.get("SigningCertURL")
    if not isinstance(url, str) or not allowed_url(url, trust.sns_hosts, certificate=True):
        raise Refused("SigningCertURL is not an https .pem URL on an SNS host")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("the Signature is not base64") from None
    text = string_to_sign(message)
    key = certificates.public_key(url)
    try:
        key.verify(signature, text, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused("bad signature") from None


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical text SNS signs: `Name\\nvalue\\n` for each field in order; Subject only
    when the message has one."""
    names = NOTIFICATION_FIELDS if message["Type"] == "Notification" else CONFIRMATION_FIELDS
    text = []
    for name in names:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise Refused(f"the message has no {name} to check its signature")
        text.append(f"{name}\n{value}\n")
    return "".join(text).encode("utf-8")


def confirm(message: dict[str, Any], trust: Trust, certificates: Certificates) -> str:
    topic = str(message.get("TopicArn"))
    url = message.get("SubscribeURL")
    if not isinstance(url, str) or not allowed_url(url, trust.sns_hosts, certificate=False):
        raise Refused("SubscribeURL is not an https URL on an SNS host")
    certificates.get(url)
    return f"subscription to {topic} confirmed"


def parse(message: dict[str, Any]) -> list[Event]:
    text = message.get("Message")
    if text == SES_TOPIC_TEST:
        return []
    notification = json_body(text.encode("utf-8")) if isinstance(text, str) else None
    if not isinstance(notification, dict):
        raise Malformed("the SNS Message is not an SES notification")
    name = text_at(notification, "notificationType") or text_at(notification, "eventType")
    sns_id = text_at(message, "MessageId")
    if name == "Bounce":
        return bounces(notification, sns_id)
    if name == "Complaint":
        return complaints(notification, sns_id)
    if name == "Delivery":
        return deliveries(notification, sns_id)
    return []


def _event(
    notification: dict[str, Any],
    part: str,
    field: str,
    index: int,
    sns_id: str,
    kind: Kind,
    address: str,
    reason: str,
    severity: Severity | None = None,
) -> Event:
    """One recipient's event; `raw` is the notification with `part`'s `field` list narrowed to
    this recipient, so that no row holds another person's address."""
    body = notification[part]
    narrowed = {**notification, part: {**body, field: [body[field][index]]}}
    return Event(
        provider=PROVIDER,
        kind=kind,
        recipient=parseaddr(address)[1] or address,
        event_id=event_id(f"{sns_id}/{index}" if sns_id else None, narrowed),
        message_id=text_at(notification, "mail", "messageId"),
        at=iso_time(body.get("timestamp")),
        reason=reason,
        raw=narrowed,
        severity=severity,
    )


def _listed(notification: dict[str, Any], part: str, field: str) -> list[Any]:
    body = notification.get(part)
    found = body.get(field) if isinstance(body, dict) else None
    if not isinstance(found, list):
        raise Malformed(f"the notification has no {part}.{field} list")
    return found


def bounces(notification: dict[str, Any], sns_id: str) -> list[Event]:
    recipients = _listed(notification, "bounce", "bouncedRecipients")
    bounce_type = text_at(notification, "bounce", "bounceType")
    sub_type = text_at(notification, "bounce", "bounceSubType")
    severity = Severity.HARD if bounce_type == "Permanent" else Severity.SOFT
    events = []
    for index, recipient in enumerate(recipients):
        address = text_at(recipient, "emailAddress")
        if not address:
            raise Malformed("a bounced recipient has no emailAddress")
        detail = text_at(recipient, "diagnosticCode") or text_at(recipient, "status")
        reason = f"{bounce_type}/{sub_type}" + (f": {detail}" if detail else "")
        events.append(
            _event(
                notification,
                "bounce",
                "bouncedRecipients",
                index,
                sns_id,
                Kind.BOUNCED,
                address,
                reason,
                severity,
            )
        )
    return events


def complaints(notification: dict[str, Any], sns_id: str) -> list[Event]:
    recipients = _listed(notification, "complaint", "complainedRecipients")
    reason = text_at(notification, "complaint", "complaintFeedbackType") or "complaint"
    events = []
    for index, recipient in enumerate(recipients):
        address = text_at(recipient, "emailAddress")
        if not address:
            raise Malformed("a complained recipient has no emailAddress")
        events.append(
            _event(
                notification,
                "complaint",
                "complainedRecipients",
                index,
                sns_id,
                Kind.COMPLAINED,
                address,
                reason,
            )
        )
    return events


def deliveries(notification: dict[str, Any], sns_id: str) -> list[Event]:
    recipients = _listed(notification, "delivery", "recipients")
    reason = text_at(notification, "delivery", "smtpResponse")
    events = []
    for index, address in enumerate(recipients):
        if not isinstance(address, str) or not address:
            raise Malformed("a delivery recipient is not an address")
        events.append(
            _event(
                notification,
                "delivery",
                "recipients",
                index,
                sns_id,
                Kind.DELIVERED,
                address,
                reason,
            )
        )
    return events
