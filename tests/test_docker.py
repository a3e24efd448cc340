"""The Docker files: linted, and built on the same install script README and CI use."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from conftest import ROOT


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    result = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_with_the_ci_script_and_serves_the_page():
    dockerfile = (ROOT / "Dockerfile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^RUN \./scripts/install\.sh", dockerfile, re.M)
    assert "./scripts/install.sh" in ci
    assert 'CMD ["python", "app.py"]' in dockerfile and "HEALTHCHECK" in dockerfile
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        if "*" not in copied:
            assert (ROOT / copied).exists(), f"Dockerfile copies {copied}, which does not exist"


@pytest.mark.parametrize("service", ["vibevoice", "vibevoice-gpu"])
def test_compose_services(service):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    spec = compose["services"][service]
    assert "7860:7860" in spec["ports"]
    assert any(v.endswith(":/data") for v in spec["volumes"])
    if service == "vibevoice-gpu":
        assert spec["profiles"] == ["gpu"] and "VIBEVOICE_MODEL_DIR" in spec["environment"]


def test_compose_farm_profile_runs_redis_the_web_app_and_workers_on_one_jobs_volume():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    farm = {name: spec for name, spec in services.items() if spec.get("profiles") == ["farm"]}
    assert set(farm) == {"redis", "farm-web", "farm-worker"}
    assert "ports" not in farm["redis"] and "--requirepass" in farm["redis"]["command"]
    assert farm["farm-web"]["command"][:2] == ["vibevoice", "serve"] and farm["farm-worker"]["command"][:2] == [
        "vibevoice", "worker"]
    for name in ("farm-web", "farm-worker"):
        assert farm[name]["build"]["args"]["EXTRAS"] == "farm" and "vibevoice-data:/data" in farm[name]["volumes"]
        assert farm[name]["environment"]["VIBEVOICE_QUEUE"].startswith("redis://")
    assert (ROOT / "requirements-farm.txt").read_text().count("rq==") == 1
