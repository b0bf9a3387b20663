"""Every domain's tables, imported in one place for Alembic and the schema check."""

from kokyaku.audit import models as audit_models
from kokyaku.auth import models as auth_models
from kokyaku.commerce import models as commerce_models
from kokyaku.customers import models as customer_models
from kokyaku.db import Base

metadata = Base.metadata
# Each domain adds one import line above and its name here.
__all__ = ["metadata", "audit_models", "auth_models", "commerce_models", "customer_models"]
