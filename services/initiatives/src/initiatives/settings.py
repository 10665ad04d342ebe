"""The initiatives service's settings: the kit's, plus the municipality's rules for initiatives."""

from datetime import timedelta

from pydantic import Field

from buurtkracht_kit.settings import KitSettings

from .domain.model import Rules


class InitiativesSettings(KitSettings):
    service_name: str = "initiatives"
    support_threshold: int = Field(25, ge=0, description="Supporters needed before review")
    support_period_days: int = Field(42, ge=1, description="Days to gather support after submitting")
    max_requested_amount_cents: int = Field(1_500_000, gt=0, description="Largest budget one initiative may ask")
    expiry_check_seconds: float = Field(60.0, gt=0, description="How often overdue initiatives are expired")

    def rules(self) -> Rules:
        return Rules(
            support_threshold=self.support_threshold,
            support_period=timedelta(days=self.support_period_days),
            max_requested_amount_cents=self.max_requested_amount_cents,
        )
