"""The initiatives service's settings: the kit's, plus the municipality's rules for initiatives."""

from datetime import timedelta

from pydantic import Field

from buurtkracht_kit.settings import KitSettings

from .domain import help
from .domain.model import Rules


class InitiativesSettings(KitSettings):
    service_name: str = "initiatives"
    support_threshold: int = Field(25, ge=0, description="Supporters needed before review")
    support_period_days: int = Field(42, ge=1, description="Days to gather support after submitting")
    max_requested_amount_cents: int = Field(1_500_000, gt=0, description="Largest budget one initiative may ask")
    expiry_check_seconds: float = Field(60.0, gt=0, description="How often overdue initiatives are expired")
    help_tags: list[str] = Field(
        list(help.Rules().tags),
        min_length=1,
        description="What residents may offer and initiatives may ask for (the municipality's list; BK_HELP_TAGS as a "
        'JSON list, e.g. ["koken","klussen"])',
    )
    ask_waits_days: int = Field(7, ge=1, description="Days an unanswered ask holds its place before others are asked")
    decline_rest_days: int = Field(30, ge=0, description="Days a resident who said no is asked after everyone else")
    asking_seconds: float = Field(10.0, gt=0, description="How often open help requests are matched and asked")
    asking_batch_size: int = Field(1000, ge=1, description="Open requests one transaction of the asking pass plans")

    def help_rules(self) -> help.Rules:
        return help.Rules(
            tags=tuple(self.help_tags),
            ask_waits=timedelta(days=self.ask_waits_days),
            decline_rest=timedelta(days=self.decline_rest_days),
        )

    def rules(self) -> Rules:
        return Rules(
            support_threshold=self.support_threshold,
            support_period=timedelta(days=self.support_period_days),
            max_requested_amount_cents=self.max_requested_amount_cents,
        )
