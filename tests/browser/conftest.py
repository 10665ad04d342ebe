"""The browser tier's fixtures: one Chromium for the tier, the whole system once for it, and people in it."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright

from .chromium import launch


@pytest.fixture(scope="package")
async def chromium():
    """Debian's Chromium, launched once for the tier; each person gets a browser context of their own."""
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            yield browser
        finally:
            await browser.close()
