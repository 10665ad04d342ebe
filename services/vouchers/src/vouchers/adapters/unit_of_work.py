"""The vouchers service's unit of work: one transaction, with the repositories of this service on its
connection. Commands reach the database only through these; the adapters are the only modules that speak SQL."""

from __future__ import annotations

from typing import Any

import asyncpg

from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.erasure import KitTables
from buurtkracht_kit.idempotency import IdempotencyKeys

from .awards import AwardRepository
from .ballots import BallotRepository
from .equal_shares import EqualSharesRepository
from .initiatives import InitiativeRepository
from .ledger import Ledger
from .payouts import BatchRepository, PayeeRepository, StatementRepository
from .pledges import PledgeRepository
from .rounds import RoundRepository
from .spending import ClaimRepository, PayoutRepository
from .steering import SteeringGroupRepository


class VouchersUnitOfWork(UnitOfWork):
    rounds: RoundRepository
    initiatives: InitiativeRepository
    pledges: PledgeRepository
    awards: AwardRepository
    claims: ClaimRepository
    payouts: PayoutRepository
    payees: PayeeRepository
    payout_batches: BatchRepository
    statements: StatementRepository
    steering_groups: SteeringGroupRepository
    ledger: Ledger
    ballots: BallotRepository
    equal_shares: EqualSharesRepository
    idempotency_keys: IdempotencyKeys
    kit_tables: KitTables

    def bind(self, connection: asyncpg.Connection) -> None:
        self.rounds = RoundRepository(connection)
        self.initiatives = InitiativeRepository(connection)
        self.pledges = PledgeRepository(connection)
        self.awards = AwardRepository(connection)
        self.claims = ClaimRepository(connection)
        self.payouts = PayoutRepository(connection)
        self.payees = PayeeRepository(connection)
        self.payout_batches = BatchRepository(connection)
        self.statements = StatementRepository(connection)
        self.steering_groups = SteeringGroupRepository(connection)
        self.ledger = Ledger(connection)
        self.ballots = BallotRepository(connection)
        self.equal_shares = EqualSharesRepository(connection)
        self.idempotency_keys = IdempotencyKeys(connection)
        self.kit_tables = KitTables(connection)

    def collect(self, *aggregates: Any) -> None:
        """Record the events the aggregates recorded, in the order given, and clear them."""
        for aggregate in aggregates:
            if aggregate is not None:
                self.record_all(aggregate.events)
                aggregate.events.clear()
