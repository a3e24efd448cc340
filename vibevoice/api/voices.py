"""``/v1/voices``: the voice templates, and cloning a voice from a consented reference clip."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, UploadFile

from ..cloning import clone_voice
from ..voices import CONSENT_STATEMENT, VoiceTemplate, load_templates
from .deps import actor

router = APIRouter(prefix="/voices", tags=["voices"])


@router.get("", response_model=list[VoiceTemplate])
def voices():
    return list(load_templates().values())


@router.post("/clone", status_code=201, response_model=VoiceTemplate)
async def clone(clip: UploadFile, name: str = Form(min_length=1, max_length=40),
                consent: bool = Form(False, description=f"required: {CONSENT_STATEMENT}"), who: str = Depends(actor)):
    """Save a reference recording as a cloning voice; refused (422) unless ``consent`` is true."""
    data = await clip.read()
    return clone_voice(name, data, Path(clip.filename or "").suffix, consent, who)
