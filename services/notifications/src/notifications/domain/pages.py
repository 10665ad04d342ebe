"""The portal pages messages link to, and which page each kind of message opens: one call to action per message.

A page is a route of the portal with `{name}` placeholders, filled from the message's own values (ids and area
codes, never a person); a link is always absolute, on the portal's configured base URL, since a mail client has no
page to resolve a relative one against.
"""

from __future__ import annotations

from functools import cache
from string import Formatter
from typing import Any
from urllib.parse import quote

INITIATIVE = "/initiatieven/{initiative_id}"
REVIEW = "/beoordelen/{initiative_id}"
CLAIM = "/declaraties/{claim_id}"
ROUND = "/rondes/{round_id}"
ROUND_AWARDS = "/rondes/{round_id}/toekenningen"
AREA = "/buurten/{area_code}"
ASK = "/vragen/{ask_id}"
SETTINGS = "/instellingen"
INBOX = "/inbox"

PAGE_OF_KIND: dict[str, str] = {
    "initiative_submitted": INITIATIVE,
    "new_initiative_in_area": INITIATIVE,
    "new_supporter": INITIATIVE,
    "support_withdrawn": INITIATIVE,
    "threshold_reached": INITIATIVE,
    "initiative_in_review": REVIEW,
    "initiative_approved": INITIATIVE,
    "initiative_rejected": INITIATIVE,
    "changes_requested": INITIATIVE,
    "initiative_withdrawn": INITIATIVE,
    "initiative_expired": INITIATIVE,
    "new_volunteer": INITIATIVE,
    "co_initiator_joined": INITIATIVE,
    "initiative_started": INITIATIVE,
    "initiative_completed": INITIATIVE,
    "initiative_cancelled": INITIATIVE,
    "reminder_support_ending": INITIATIVE,
    "reminder_report_due": INITIATIVE,
    "reminder_review_waiting": REVIEW,
    "reminder_claim_waiting": CLAIM,
    "reminder_round_closing": ROUND,
    "reminder_ballot_open": ROUND,
    "round_opened": ROUND,
    "wallet_issued": ROUND,
    "pledge_confirmed": ROUND,
    "pledge_returned": ROUND,
    "initiative_awarded": INITIATIVE,
    "steering_group_chair": AREA,
    "steering_group_joined": AREA,
    "steering_group_left": AREA,
    "award_to_vote": ROUND_AWARDS,
    "award_declined": INITIATIVE,
    "expense_to_decide": CLAIM,
    "expense_approved": INITIATIVE,
    "expense_declined": INITIATIVE,
    "payout_settled": INITIATIVE,
    "payout_returned": INITIATIVE,
    "payout_cancelled": INITIATIVE,
    "round_results": ROUND,
    "webhook_disabled": INBOX,
    "help_asked": ASK,
    "help_request_filled": INITIATIVE,
}


@cache
def page_fields(kind: str) -> frozenset[str]:
    """The values the page of a message of `kind` is filled with."""
    return frozenset(name for _, name, _, _ in Formatter().parse(PAGE_OF_KIND[kind]) if name)


def path(kind: str, values: dict[str, Any]) -> str:
    """The path of the page a message of `kind` opens (a value missing is a KeyError: such a message cannot be
    composed)."""
    return PAGE_OF_KIND[kind].format(**{name: quote(str(values[name]), safe="") for name in page_fields(kind)})


def link(base_url: str, page_path: str) -> str:
    return base_url.rstrip("/") + page_path
