"""The vouchers service's settings: the kit's, plus how often rounds are closed and the books checked, and how many
pledges are decided together at most."""

from datetime import time

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
    consumer_batch_size: int = Field(
        1,
        ge=1,
        description="Records of initiative events applied per transaction. One: each reaction takes its locks in the "
        "one order that keeps commands from deadlocking (service.locking), and several reactions in one transaction "
        "would hold the locks of the first while taking those of the next",
    )
    payout_debtor_name: str = Field(
        "Gemeente Amsterdam",
        min_length=1,
        max_length=70,
        description="The municipality's account the payouts are paid from: its holder",
    )
    payout_debtor_iban: str = Field(
        "NL38BNGH0285012345", description="The municipality's account the payouts are paid from (checked with schwifty)"
    )
    payout_debtor_bic: str = Field("BNGHNL2G", description="The BIC of the municipality's bank")
    payout_batch_closing_time: time = Field(
        time(15, 0), description="The open payout batch closes every day at this local time (when it holds payouts)"
    )
    payout_batch_time_zone: str = Field("Europe/Amsterdam", description="The time zone of the closing time")
    payout_batch_check_seconds: float = Field(60.0, gt=0, description="How often a due payout batch is looked for")
