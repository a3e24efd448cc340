"""Dependencies the routers share: the job service and who is asking."""

from __future__ import annotations

from fastapi import Request

from ..job.service import JobService


def job_service(request: Request) -> JobService:
    return request.app.state.jobs


def actor(request: Request) -> str:
    """Who asked, for the local audit log: the client's address (the API has no accounts)."""
    return f"api:{request.client.host if request.client else 'unknown'}"
