"""Pydantic shapes of jobs for the API."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from kokyaku.jobs.models import Job
from kokyaku.jobs.service import label_of


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    label: str
    status: str
    priority: int
    attempts: int
    max_attempts: int
    progress: int
    progress_total: int | None
    percent: int | None
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    payload: dict[str, Any]
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    created_by: int | None

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        return cls.model_validate({**{k: getattr(job, k) for k in cls.model_fields if k != "label"},
                                   "label": label_of(job.kind)})  # fmt: skip


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
