"""Every domain's tables, imported in one place for Alembic and the schema check."""

from kokyaku.analytics import tables as analytics_models
from kokyaku.audit import models as audit_models
from kokyaku.auth import models as auth_models
from kokyaku.commerce import models as commerce_models
from kokyaku.customers import merge_models as customer_merge_models
from kokyaku.customers import models as customer_models
from kokyaku.db import Base
from kokyaku.feedback import models as feedback_models
from kokyaku.imports import models as imports_models
from kokyaku.jobs import models as jobs_models
from kokyaku.segments import models as segments_models
from kokyaku.timeline import models as timeline_models

metadata = Base.metadata
# Each domain adds one import line above and its name here.
__all__ = [
    "metadata",
    "audit_models",
    "auth_models",
    "commerce_models",
    "customer_models",
    "customer_merge_models",
    "timeline_models",
    "jobs_models",
    "imports_models",
    "segments_models",
    "feedback_models",
    "analytics_models",
]
