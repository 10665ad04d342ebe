"""Email out over SMTP (aiosmtplib). The Message-ID is derived from the notification id, so a message sent
again after a crash (between the server's acceptance and our record of it) is recognisably the same.

Why a message was not sent leaves the service (in `NotificationFailed`, kept on Kafka, and in the log) only as
`failure_reason` words it: the SMTP reply codes and the server's text with every e-mail address taken out, as
a server's reply often names the recipient."""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import aiosmtplib

from ..domain.messages import Message
from ..settings import NotificationsSettings

# An address as servers echo it: `<local@domain>` or bare, the local part possibly quoted.
_ADDRESS = re.compile(r"""<?(?:"[^"]*"|[^\s<>()\[\],;:"@]+)@[^\s<>()\[\],;:"']+>?""")


def compose(message_id: uuid.UUID, to: str, message: Message, sender: str, language: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = formataddr(("", to))
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = f"<{message_id}@buurtkracht>"
    email["Content-Language"] = language
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    return email


class Mailer:
    def __init__(self, settings: NotificationsSettings) -> None:
        self._settings = settings

    def client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_seconds,
        )


class MailNotSent(Exception):
    """The mail server could not be reached or refused the message; the text is a `failure_reason`."""


def failure_reason(error: BaseException, *addresses: str) -> str:
    """Why sending failed, without any e-mail address: the kind of error, the SMTP reply code and the server's
    text (each refused recipient's, never the recipient itself), scrubbed of addresses and of the mailbox
    names of `addresses`."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{refused.code} {refused.message}" for refused in error.recipients)
    elif isinstance(error, aiosmtplib.SMTPResponseException):
        text = f"{error.code} {error.message}"
    else:
        text = str(error)
    return f"{type(error).__name__}: {scrubbed(text, *addresses)}"


def scrubbed(text: str, *addresses: str) -> str:
    """`text` with every e-mail address replaced by `<address>`, and the mailbox name (local part) of each of
    `addresses` by `<mailbox>` wherever it stands alone, whatever its case."""
    for address in addresses:
        text = re.sub(rf"<?{re.escape(address)}>?", "<address>", text, flags=re.IGNORECASE)
    text = _ADDRESS.sub("<address>", text)
    for address in addresses:
        if mailbox := address.rpartition("@")[0]:
            text = re.sub(rf"(?<![\w.+-]){re.escape(mailbox)}(?![\w.+-])", "<mailbox>", text, flags=re.IGNORECASE)
    return text
