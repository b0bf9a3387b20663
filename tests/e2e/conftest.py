"""Browser tests: the fixtures (live_server, browser, page) live in tests/conftest.py so that every
browser test in any folder shares one Chromium per test process."""
