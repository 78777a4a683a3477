"""Live mapping edits: the daemon runs the last good version of the mapping files.

    watcher = MappingWatcher(config, store=store)
    watcher.check()          # before each job: cheap (stat), validates only a changed set
    run_stage(watcher.config)  # mapping paths point at the last good copies

An edit is read once, copied aside and validated with the loaders the stages use (fields,
scoring, routing, sla). Valid: the copies become the new generation and the next job uses
them. Invalid: refused, every problem logged with its file, key and fix, kept in
`watcher.health` and in the `mappings.health` bookmark (for `handshake status` and
`/metrics`), and the last good generation keeps running. Copies, not the files themselves:
an admin saving a file halfway through a job never changes what that job reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.defaults import MAPPING_FILES
from connector.errors import ConfigProblem
from connector.runtime.status import MAPPINGS_HEALTH, mapping_problems
from connector.store import Store

__all__ = ["MappingHealth", "MappingWatcher"]

log = logging.getLogger("connector.daemon.mappings")

KEEP_GENERATIONS = 2  # a job still reading the previous generation keeps its files


@dataclass
class MappingHealth:
    """The watcher's last verdict: `ok` when the files on disk are the ones running."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    checked_at: str = ""
    files: dict[str, str] = field(default_factory=dict)  # name -> path of the running copy
    problems: list[dict[str, Any]] = field(default_factory=list)  # ConfigProblem.as_dict()

    def to_json(self) -> dict[str, Any]:
        """As the daemon's instance record and the `mappings.health` bookmark keep it."""
        return {"ok": self.ok, "errors": list(self.errors), "checked_at": self.checked_at,
                "problems": list(self.problems)}


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class MappingWatcher:
    """Keeps `config` pointing at the last good copies of the mapping files."""

    def __init__(self, config: Config, *, store: Store | None = None,
                 folder: Path | None = None, clock: Clock | None = None) -> None:
        self.original = config
        self.store = store
        self.clock = clock or SystemClock()
        self._own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="handshake-mappings-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sources = {name: config.mapping_path(name) for name in MAPPING_FILES}
        self.config = config  # until a first good version is copied
        self.health = MappingHealth(ok=False, checked_at="")
        self._stats: dict[str, tuple[int, int] | None] = {}
        self._digest: str | None = None  # of the set last validated (good or refused)
        self._generation = 0
        self._good: dict[str, bytes | None] = {}  # the contents running now
        self.check()

    # --- the check before each job ------------------------------------------------------

    def check(self) -> bool:
        """Look for edits (file times and sizes; contents only when one moved); validate a
        changed set. Returns True when a new version was taken (the next job runs it)."""
        stats = {name: _stat(path) for name, path in self.sources.items()}
        if stats == self._stats and self._digest is not None:
            return False
        self._stats = stats
        contents = {name: _read(path) for name, path in self.sources.items()}
        digest = hashlib.sha256(b"\0".join(
            name.encode() + b"=" + (body if body is not None else b"<missing>")
            for name, body in sorted(contents.items()))).hexdigest()
        if digest == self._digest:
            return False  # touched, not changed
        self._digest = digest
        return self._validate(contents)

    def _validate(self, contents: dict[str, bytes | None]) -> bool:
        staged = self.folder / f"gen-{self._generation + 1}"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        paths: dict[str, Path] = {}
        for name, body in contents.items():
            copy = staged / self.sources[name].name
            if body is not None:
                copy.write_bytes(body)
            paths[name] = copy
        found = mapping_problems(self.original, paths)
        # the copies' paths in the problems become the files the admin edits
        problems = [self._as_source(p, paths) for name in found for p in found[name]]
        now = self.clock.now().isoformat()
        if problems:
            shutil.rmtree(staged, ignore_errors=True)
            running = "the last good version keeps running" if self._generation else \
                "no valid version was ever loaded: the jobs will report these problems"
            log.error("mapping edit refused: %d problem(s); %s", len(problems), running)
            for p in problems:
                log.error("mapping problem: %s", p)
            self.health = MappingHealth(
                ok=False, errors=[str(p) for p in problems], checked_at=now,
                files=self.health.files, problems=[p.as_dict() for p in problems])
            self._save_health()
            return False
        first = self._generation == 0
        changed = [str(self.sources[n]) for n in paths if contents[n] != self._good.get(n)]
        self._good = dict(contents)
        self._generation += 1
        self.config = self._pointing_at(paths)
        self._prune()
        if not first:
            log.warning("mapping edit taken: %s valid; the next job uses it",
                        ", ".join(changed) or "the files are")
        self.health = MappingHealth(ok=True, checked_at=now,
                                    files={n: str(p) for n, p in paths.items()})
        self._save_health()
        return not first

    def _as_source(self, problem: ConfigProblem, paths: dict[str, Path]) -> ConfigProblem:
        for name, copy in paths.items():
            if problem.file == str(copy):
                return ConfigProblem(str(self.sources[name]), problem.key, problem.problem,
                                     problem.fix, problem.line)
        return problem

    def _pointing_at(self, paths: dict[str, Path]) -> Config:
        """The original config with its mapping paths on the copies (the keys it did not set
        stay unset where no copy exists, so a stage's fallbacks still apply)."""
        mappings = self.original.mappings
        values = {k: getattr(mappings, k) for k in mappings.model_fields_set}
        for name, path in paths.items():
            if path.exists():
                values[name] = str(path)
        return self.original.model_copy(
            update={"mappings": type(mappings).model_validate(values)})

    def _prune(self) -> None:
        for old in self.folder.glob("gen-*"):
            suffix = old.name.removeprefix("gen-")
            if suffix.isdigit() and int(suffix) <= self._generation - KEEP_GENERATIONS:
                shutil.rmtree(old, ignore_errors=True)

    def _save_health(self) -> None:
        if self.store is None:
            return
        try:
            self.store.set_bookmark(MAPPINGS_HEALTH, json.dumps(self.health.to_json()))
        except Exception as exc:  # noqa: BLE001  (reporting it must never stop the daemon)
            log.warning("could not record the mapping health in the state store: %s", exc)

    def close(self) -> None:
        """Remove the copies (only a folder the watcher made itself)."""
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
