"""The browser tier: Debian's Chromium, driven by Playwright, through the portal as a person uses it, with
axe-core on every page it shows (WCAG 2.1 A and AA, the standard Dutch government sites are held to)."""
