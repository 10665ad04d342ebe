"""The vouchers service's settings: the kit's, plus how often rounds are closed and the books checked, and how many
pledges are decided together at most."""

from pydantic import Field

from buurtkracht_kit.settings import KitSettings


class VouchersSettings(KitSettings):
    service_name: str = "vouchers"
    round_closing_check_seconds: float = Field(30.0, gt=0, description="How often rounds past closes_at are closed")
    ledger_check_seconds: float = Field(300.0, gt=0, description="How often the ledger invariants are verified")
    pledge_batch_max: int = Field(
        256,
        ge=1,
        le=10_000,
        description="Pledges that arrive together are decided in one transaction, this many at most",
    )
