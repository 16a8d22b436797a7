"""RunSpec: everything the runner needs to start a run's template, as one JSON file in its work folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPEC_FILE = "spec.json"
TEMPLATE_FILE = "template.py"
CHILD_FILE = "jtb_child.py"
PARAMS_FILE = "params.json"


@dataclass(frozen=True)
class RunSpec:
    process_id: int
    job: str
    attempt: int
    template: str
    timeout_seconds: int
    memory_mib: int
    kill_grace_seconds: int
    modules: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    # The job environment's interpreter, when it was ready as the run was prepared (else the
    # runner builds or restores the environment, recorded as the "install modules" task).
    python: str | None = None
    # Why the template could not be fetched; the runner records the failure, so every outcome
    # has one writer.
    template_error: str | None = None

    def write(self, workdir: Path) -> None:
        (workdir / SPEC_FILE).write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, workdir: Path) -> RunSpec:
        return cls(**json.loads((workdir / SPEC_FILE).read_text(encoding="utf-8")))
