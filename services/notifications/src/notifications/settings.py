"""The notifications service's settings: the kit's, plus SMTP, dispatching, digests, retention of residents'
messages and webhooks."""

from pydantic import Field

from buurtkracht_kit.settings import KitSettings


class NotificationsSettings(KitSettings):
    service_name: str = "notifications"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 10025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    mail_from: str = "Buurtkracht <noreply@buurtkracht.local>"
    public_base_url: str = Field("http://127.0.0.1:8080", description="Where links in messages point")
    dispatch_interval_seconds: float = Field(1.0, gt=0, description="How often pending email is sent")
    dispatch_batch_size: int = Field(100, ge=1)
    email_max_attempts: int = Field(8, ge=1, description="Attempts before an email is given up (about a day)")
    digest_check_seconds: float = Field(300.0, gt=0, description="How often due digests are sent")
    digest_hour: int = Field(
        8, ge=0, le=23, description="Local hour (Europe/Amsterdam) daily and weekly digests go out"
    )
    message_retention_days: float = Field(
        365.0,
        ge=0,
        description="How long residents' messages are kept: inbox items (read or not) and email sent or failed for "
        "good are deleted this many days after they were made; 0 keeps them until their recipient is forgotten",
    )
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="Per delivery attempt")
    webhook_concurrency: int = Field(20, ge=1, description="Deliveries in flight at once")
    webhook_max_attempts: int = Field(8, ge=1, description="Attempts of one delivery, spread over about a day")
    webhook_disable_after_failures: int = Field(
        20, ge=1, description="Consecutive failed attempts after which a subscription is disabled (see the hours)"
    )
    webhook_disable_after_hours: float = Field(
        24.0,
        ge=0,
        description="How long a run of failed attempts must have lasted before it disables the subscription: an "
        "endpoint down for a minute fails every delivery of that minute, and its subscription stays on",
    )
    webhook_dispatch_interval_seconds: float = Field(1.0, gt=0)
    webhook_allow_private_addresses: bool = Field(
        False,
        description="Let webhooks reach private, loopback and link-local addresses (a local setup only): "
        "otherwise an endpoint must be on the public internet",
    )
    webhook_delivery_retention_days: float = Field(
        30.0, gt=0, description="How long the log keeps a delivered or failed webhook delivery"
    )
    webhook_secret_overlap_hours: float = Field(
        24.0, ge=0, le=168, description="How long a rotated secret still signs deliveries beside the new one"
    )
