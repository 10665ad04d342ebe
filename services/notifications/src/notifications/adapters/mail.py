"""Email out over SMTP (aiosmtplib). The Message-ID is derived from the notification id, so a message sent
again after a crash (between the server's acceptance and our record of it) is recognisably the same."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import aiosmtplib

from ..domain.messages import Message
from ..settings import NotificationsSettings


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
