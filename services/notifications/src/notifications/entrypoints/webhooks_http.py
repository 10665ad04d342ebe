"""Webhook subscriptions API (being written)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/webhook-subscriptions", tags=["webhooks"])
