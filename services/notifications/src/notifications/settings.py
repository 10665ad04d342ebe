"""The notifications service's settings: the kit's, plus SMTP, dispatching, digests, retention of residents'
messages, webhooks, reminders (each kind on or off, with its days: one deployment per municipality), and whose
messages they are (the municipality's name, colour and logo, and the portal the links in messages open)."""

from pydantic import Field, HttpUrl, TypeAdapter, field_validator

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
    public_base_url: str = Field(
        "http://127.0.0.1:8004",
        description="The portal's external base URL (http or https, absolute): every link in a message opens a page "
        "under it",
    )
    municipality_name: str = Field(
        "Buurtkracht", min_length=1, max_length=100, description="Shown at the top and foot of every email"
    )
    municipality_primary_colour: str = Field(
        "#01689B",
        pattern=r"^#[0-9A-Fa-f]{6}$",
        description="The municipality's colour (#RRGGBB) for the email's masthead and button; their text is black "
        "or white, whichever contrasts more",
    )
    municipality_logo_url: str | None = Field(
        None, description="Absolute http(s) URL of the municipality's logo, shown instead of its name at the top"
    )
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

    reminder_check_seconds: float = Field(300.0, gt=0, description="How often due reminders are sent")
    reminder_round_closing_enabled: bool = Field(
        True, description="Remind wallet holders who still hold vouchers that a pledge round closes soon"
    )
    reminder_round_closing_days_before: int = Field(3, ge=1, le=90, description="Days before a pledge round closes")
    reminder_support_ending_enabled: bool = Field(
        True, description="Remind initiators that the support period ends while supporters are still needed"
    )
    reminder_support_ending_days_before: int = Field(7, ge=1, le=90, description="Days before the support deadline")
    reminder_ballot_open_enabled: bool = Field(
        True, description="Remind residents known in the area who have not voted that an Equal Shares ballot closes"
    )
    reminder_ballot_open_days_before: int = Field(
        3, ge=1, le=90, description="Days before an Equal Shares round closes"
    )
    reminder_review_waiting_enabled: bool = Field(
        True, description="Remind officials of the area of an initiative waiting for their review"
    )
    reminder_review_waiting_days: int = Field(14, ge=1, le=365, description="Days an initiative waited in review")
    reminder_claim_waiting_enabled: bool = Field(
        True, description="Remind officials of the area of an expense claim waiting for a decision"
    )
    reminder_claim_waiting_days: int = Field(7, ge=1, le=365, description="Days a claim waited for a decision")
    reminder_report_due_enabled: bool = Field(
        True, description="Remind initiators of an initiative in progress that its report (which completes it) is due"
    )
    reminder_report_due_days: int = Field(90, ge=1, le=730, description="Days an initiative has been in progress")
    reminder_batch_size: int = Field(
        5000, ge=1, description="Residents reminded of one subject per transaction (a city-wide round has many)"
    )

    @field_validator("public_base_url", "municipality_logo_url")
    @classmethod
    def _absolute_http(cls, url: str | None) -> str | None:
        """A mail client resolves no relative link: these are absolute http(s) URLs (the base without a trailing
        slash)."""
        if url is None or url == "":
            return None
        checked = TypeAdapter(HttpUrl).validate_python(url)
        if checked.scheme not in ("http", "https"):
            raise ValueError("must be an http or https URL")
        return url.rstrip("/")

    @field_validator("municipality_name")
    @classmethod
    def _one_line(cls, name: str) -> str:
        if any(not character.isprintable() for character in name):
            raise ValueError("must be one line of printable characters")
        return name.strip()
