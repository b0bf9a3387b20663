"""Imports every domain's service module so that merge participants (and similar hooks) are registered.

The lead keeps this list complete: one import per domain that registers hooks.
"""

import kokyaku.commerce.service  # noqa: F401
import kokyaku.customers.service  # noqa: F401
import kokyaku.feedback.service  # noqa: F401
import kokyaku.timeline.service  # noqa: F401
