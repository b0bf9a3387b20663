"""Every domain's tables, imported in one place for Alembic and the schema check."""

from kokyaku.audit import models as audit_models
from kokyaku.auth import models as auth_models
from kokyaku.customers import models as customer_models
from kokyaku.db import Base

metadata = Base.metadata
__all__ = ["metadata", "audit_models", "auth_models", "customer_models"]
