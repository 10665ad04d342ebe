# The browser tier's browser: Debian's Chromium and its driver, installed with apt-get when missing (browsers that
# a package tries to download itself will not install here, so Playwright only drives this one).
#
#   make browser       install chromium, chromium-driver and a text font when /usr/bin/chromium is missing, then
#                      check that the installed Chromium is at least CHROMIUM_MIN_MAJOR
#   make test-browser  the browser tier: the resident journey and axe-core on every page, in Chromium (needs the stack)

CHROMIUM           := /usr/bin/chromium
CHROMEDRIVER       := /usr/bin/chromedriver
CHROMIUM_PACKAGES  := chromium chromium-driver fonts-liberation
# the oldest Chromium the pinned Playwright drives: its protocol grows with each release
CHROMIUM_MIN_MAJOR := 140
SUDO               := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: browser

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "$(CHROMIUM) is missing and there is no apt-get: install Chromium $(CHROMIUM_MIN_MAJOR)+ there"; exit 1; }
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(CHROMIUM_PACKAGES)

browser: $(CHROMIUM)
	@[ -x $(CHROMEDRIVER) ] || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(CHROMIUM_PACKAGES)
	@version="$$($(CHROMIUM) --headless --no-sandbox --version 2>/dev/null)"; \
	major="$$(sed -E 's/[^0-9]*([0-9]+)\..*/\1/' <<<"$$version")"; \
	[[ "$$major" =~ ^[0-9]+$$ ]] || { echo "$(CHROMIUM) --version said '$$version'"; exit 1; }; \
	[ "$$major" -ge $(CHROMIUM_MIN_MAJOR) ] || { echo "$$version is older than Chromium $(CHROMIUM_MIN_MAJOR)"; exit 1; }; \
	echo "$$version ($(CHROMIUM))"
