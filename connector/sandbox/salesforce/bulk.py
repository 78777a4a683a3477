"""Bulk API 2.0 ingest jobs of the emulated org: the job lifecycle, CSV in and out, and the
shared daily batch allocation. The HTTP handlers live in `app`; records are written through
the same code path as sObject Collections, so both APIs answer a record the same way.

Behaviour emulated (Bulk API 2.0 Developer Guide,
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/):
- Create a Job (`POST /jobs/ingest`, create_job.htm): `object`, `operation`, `externalIdFieldName`
  (upsert), `contentType` CSV, `lineEnding` LF/CRLF, `columnDelimiter`, `assignmentRuleId`;
  the answer is the job in state Open with its `contentUrl`.
- Upload Job Data (`PUT .../batches`, upload_job_data.htm): text/csv, 201 with no body; one
  upload per job: a second one makes the close fail with INVALIDJOB.
- Close or Abort (`PATCH`, close_job.htm): `UploadComplete` or `Aborted`.
- Job states (bulk_api_2_job_states.htm): Open, UploadComplete, InProgress, JobComplete, Failed,
  Aborted. Processing is deterministic here: the job stays UploadComplete until polled, answers
  InProgress to the first `in_progress_polls` polls, and is processed whole at the next one.
- Results (get_job_successful_results.htm, get_job_failed_results.htm,
  get_job_unprocessed_results.htm): CSV with `sf__Id`, `sf__Created` / `sf__Error` and the
  uploaded columns; their order is not guaranteed, and is reversed here so clients cannot
  rely on it. `sf__Error` reads `STATUS_CODE:message:fields --` per error, as Bulk API 1.0
  results do (asynch_api_batches_get_results.htm).
- CSV values: an empty value leaves the field alone, `#N/A` sets it to null
  (datafiles_prepare_csv.htm); a header naming no field fails the job ("InvalidBatch : Field
  name not found"); a value that does not fit its field fails that record with INVALID_FIELD
  "Failed to deserialize field at col N".
- Saves: a batch is saved 200 records at a time (the chunks bulk triggers receive,
  apexcode apex_triggers_bulk.htm), and records of one save are not compared to each other
  by the duplicate rule, as in one collection call.
- Batches (datafiles_understanding_bulk2_ingest.htm): one per 10,000 records, counted against
  the 15,000 per rolling 24 hours shared with Bulk API 1.0; past it the rest of the job is left
  unprocessed and the job is Failed.

Not emulated: query jobs, delete/hardDelete operations, multipart create, compressed uploads.
"""

from __future__ import annotations

import collections
import csv
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import settings
from .ids import IdFactory
from .schema import ObjectDef, object_def
from .state import RequestError, SalesforceState, format_datetime

__all__ = ["BulkIngest", "IngestJob", "RecordWriter"]

OPERATIONS = ("insert", "update", "upsert")
DELIMITERS = {
    "BACKQUOTE": "`",
    "CARET": "^",
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
NULL_VALUE = "#N/A"
TERMINAL = ("JobComplete", "Failed", "Aborted")

# (job, object, record fields) -> a collection-style result {"id", "success", "errors",
# "created"}; a refused record is a result with success false, never an exception
RecordWriter = Callable[["IngestJob", ObjectDef, dict[str, Any]], dict[str, Any]]


@dataclass
class IngestJob:
    """One ingest job and, once processed, its result rows."""

    id: str
    object: str
    operation: str
    external_id_field: str | None
    line_ending: str
    column_delimiter: str
    assignment_rule_id: str | None
    created_by: str
    created: datetime
    api_version: str
    state: str = "Open"
    modstamp: datetime | None = None
    uploads: list[bytes] = field(default_factory=list)
    polls: int = 0
    started: bool = False  # processing began (a concurrent poll must not process it again)
    processed: int = 0
    failed: int = 0
    error_message: str | None = None
    header: list[str] = field(default_factory=list)
    successes: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)

    def info(self, *, full: bool) -> dict[str, Any]:
        """The job as the API shows it: `full` adds the counters Get Job Info gives."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp or self.created),
            "state": self.state,
        }
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        if self.assignment_rule_id:
            body["assignmentRuleId"] = self.assignment_rule_id
        body.update(
            {
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(self.api_version),
            }
        )
        if self.state == "Open":
            body["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        body.update({"lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter})
        if full:
            body.update(
                {
                    "jobType": "V2Ingest",
                    "numberRecordsProcessed": self.processed,
                    "numberRecordsFailed": self.failed,
                    "retries": 0,
                    "totalProcessingTime": 0,
                    "apiActiveProcessingTime": 0,
                    "apexProcessingTime": 0,
                }
            )
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


def _enum(body: dict[str, Any], key: str, allowed: Any, default: str) -> str:
    value = body.get(key, default)
    if value not in allowed:
        raise RequestError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize value of type `{key}` from String \"{value}\": not one of the "
            f"values accepted for Enum class: [{', '.join(allowed)}]",
        )
    return str(value)


class _JobFailed(Exception):
    """The whole job cannot be processed; the message is the job's `errorMessage`."""


def _job_error(message: str) -> RequestError:
    return RequestError(400, "INVALIDJOB", message)


def _state_error(job: IngestJob, action: str) -> RequestError:
    return RequestError(
        409, "INVALIDJOBSTATE", f"Job {job.id} is in state {job.state}: cannot {action}"
    )


class BulkIngest:
    """The org's ingest jobs and its Bulk API batch usage (rolling 24 hours)."""

    def __init__(self, clock: Any, *, batch_allocation: int) -> None:
        self.clock = clock
        self.batch_allocation = batch_allocation
        self.in_progress_polls = 0
        self._ids = IdFactory(pod="5g0")
        self._jobs: dict[str, IngestJob] = {}
        self._batches: collections.deque[datetime] = collections.deque()
        self._lock = threading.Lock()

    # --- allocation ---------------------------------------------------------------------------
    def _prune(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=settings.DAILY_WINDOW_SECONDS)
        while self._batches and self._batches[0] <= horizon:
            self._batches.popleft()

    def batches_used(self) -> int:
        """Bulk batches counted in the rolling 24 hours of the sandbox clock."""
        with self._lock:
            self._prune(self.clock.now())
            return len(self._batches)

    def _take_batch(self) -> bool:
        now = self.clock.now()
        with self._lock:
            self._prune(now)
            if len(self._batches) >= self.batch_allocation:
                return False
            self._batches.append(now)
            return True

    # --- jobs ---------------------------------------------------------------------------------
    def jobs(self) -> list[IngestJob]:
        """Every job, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def job(self, job_id: str) -> IngestJob:
        """The job with this id, or 404 NOT_FOUND as the API answers an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise RequestError(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
        return job

    def create(
        self,
        body: Any,
        *,
        version: str,
        user_id: str,
        external_id_ok: Callable[[ObjectDef, str], str | None],
        assignment_rule_ok: Callable[[str], bool],
    ) -> IngestJob:
        """A new Open job from a Create a Job body (validated as the API does)."""
        if not isinstance(body, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        operation = _enum(body, "operation", (*OPERATIONS, "delete", "hardDelete"), "")
        if operation not in OPERATIONS:
            raise _job_error(f"Operation {operation} is not supported by this sandbox")
        _enum(body, "contentType", ("CSV",), "CSV")
        line_ending = _enum(body, "lineEnding", tuple(LINE_ENDINGS), "LF")
        delimiter = _enum(body, "columnDelimiter", tuple(DELIMITERS), "COMMA")
        name = body.get("object")
        obj = object_def(str(name)) if name else None
        if obj is None:
            raise _job_error(f"Unable to find object: {name}")
        if not obj.createable:
            raise _job_error(f"Entity '{obj.name}' is not supported by the Bulk API.")
        ext = body.get("externalIdFieldName")
        if operation == "upsert":
            if not ext:
                raise _job_error(
                    f"External ID was blank for {obj.name}. An External ID must be specified "
                    "for upsert."
                )
            resolved = external_id_ok(obj, str(ext))
            if resolved is None:
                raise _job_error(
                    f"Field name provided, {ext} is not an External ID or indexed field for "
                    f"{obj.name}"
                )
            ext = resolved
        rule = body.get("assignmentRuleId")
        if rule is not None and not assignment_rule_ok(str(rule)):
            raise _job_error(f"Invalid assignment rule id: {rule}")
        job = IngestJob(
            id=self._ids.new_raw(settings.BULK_JOB_ID_PREFIX),
            object=obj.name,
            operation=operation,
            external_id_field=str(ext) if operation == "upsert" else None,
            line_ending=line_ending,
            column_delimiter=delimiter,
            assignment_rule_id=str(rule) if rule else None,
            created_by=user_id,
            created=self.clock.now(),
            api_version=version,
        )
        with self._lock:
            self._jobs[job.id] = job
        return job

    def upload(self, job: IngestJob, data: bytes) -> None:
        """Keep one upload of CSV data (only an Open job takes data)."""
        with self._lock:
            if job.state != "Open":
                raise _state_error(job, "upload data")
            job.uploads.append(data)
            job.modstamp = self.clock.now()

    def set_state(self, job: IngestJob, body: Any) -> None:
        """Close (UploadComplete) or abort (Aborted) a job."""
        wanted = body.get("state") if isinstance(body, dict) else None
        with self._lock:
            if wanted == "UploadComplete":
                if job.state != "Open":
                    raise _state_error(job, "close it")
                if len(job.uploads) > 1:
                    raise _job_error(settings.MSG_BULK_MULTIPLE_UPLOADS.format(job_id=job.id))
                job.state = "UploadComplete"
            elif wanted == "Aborted":
                if job.state in TERMINAL or job.started:
                    raise _state_error(job, "abort it")
                job.state = "Aborted"
                job.uploads.clear()  # an aborted job's data is deleted
            else:
                raise RequestError(
                    400,
                    "INVALIDJOBSTATE",
                    f"Invalid state: {wanted}. A job can be set to UploadComplete or Aborted",
                )
            job.modstamp = self.clock.now()

    def delete(self, job: IngestJob) -> None:
        """Delete a job that is closed, complete, failed or aborted."""
        with self._lock:
            if job.state in ("Open", "InProgress"):
                raise _state_error(job, "delete it")
            del self._jobs[job.id]

    def poll(self, job: IngestJob, process: Callable[[IngestJob], None]) -> None:
        """A status read: a closed job is InProgress for `in_progress_polls` reads, then
        processed whole (by `process`) and complete."""
        with self._lock:
            if job.state not in ("UploadComplete", "InProgress") or job.started:
                return
            job.state = "InProgress"
            job.modstamp = self.clock.now()
            if job.polls < self.in_progress_polls:
                job.polls += 1
                return
            job.started = True
        process(job)

    # --- processing -----------------------------------------------------------------------
    def process(
        self, job: IngestJob, obj: ObjectDef, write: RecordWriter, state: SalesforceState
    ) -> None:
        """Write every row of the job's upload through `write` (the collections path), one
        batch of 10,000 rows at a time, saved 200 rows at a time (so the rows of one save are
        not each other's duplicates, as in one collection call); rows past the batch
        allocation stay unprocessed."""
        data = job.uploads[0] if job.uploads else b""
        job.uploads.clear()
        try:
            header, rows = self._parse(job, data)
        except _JobFailed as failed:
            self._finish(job, "Failed", str(failed))
            return
        job.header = header
        unknown = next((name for name in header if obj.field(name) is None), None)
        if unknown is not None:
            job.unprocessed = rows
            self._finish(job, "Failed", settings.MSG_BULK_FIELD_NOT_FOUND.format(field=unknown))
            return
        columns = [str(obj.field(name).name) for name in header]  # type: ignore[union-attr]
        stopped = False
        for start in range(0, len(rows), settings.BULK_BATCH_RECORDS):
            chunk = rows[start : start + settings.BULK_BATCH_RECORDS]
            if stopped or not self._take_batch():
                stopped = True
                job.unprocessed.extend(chunk)
                continue
            for first in range(0, len(chunk), settings.BULK_SAVE_RECORDS):
                with state.lock:
                    state.begin_save()
                    try:
                        for row in chunk[first : first + settings.BULK_SAVE_RECORDS]:
                            self._one(job, obj, columns, row, write)
                    finally:
                        state.end_save()
        if stopped:
            self._finish(job, "Failed", settings.MSG_BULK_BATCHES_EXCEEDED)
        else:
            self._finish(job, "JobComplete", None)

    def _finish(self, job: IngestJob, state: str, message: str | None) -> None:
        with self._lock:
            job.state = state
            job.error_message = message
            job.modstamp = self.clock.now()

    def _parse(self, job: IngestJob, data: bytes) -> tuple[list[str], list[list[str]]]:
        text = data.decode("utf-8-sig")
        newline = text.find("\n")
        if newline >= 0 and (newline > 0 and text[newline - 1] == "\r") != (
            job.line_ending == "CRLF"
        ):
            raise _JobFailed(
                "ClientInputError : LineEnding is invalid on user data. Current LineEnding "
                f"setting is {job.line_ending}"
            )
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter]
        )
        rows = [row for row in reader if row]
        if not rows:
            raise _JobFailed("ClientInputError : No data was uploaded for this job")
        header = [name.strip() for name in rows[0]]
        seen: set[str] = set()
        for name in header:
            if name.lower() in seen:
                raise _JobFailed(f"InvalidBatch : Duplicate field name: {name}")
            seen.add(name.lower())
        return header, rows[1:]

    def _one(
        self,
        job: IngestJob,
        obj: ObjectDef,
        columns: list[str],
        row: list[str],
        write: RecordWriter,
    ) -> None:
        padded = row + [""] * (len(columns) - len(row))
        fields: dict[str, Any] = {}
        for name, value in zip(columns, padded, strict=False):
            if value == "":
                continue  # an empty value leaves the field as it is
            fields[name] = None if value == NULL_VALUE else value
        job.processed += 1
        result = write(job, obj, fields)
        if result.get("success"):
            created = "true" if result.get("created", job.operation == "insert") else "false"
            job.successes.append([str(result["id"]), created, *row])
        else:
            job.failed += 1
            job.failures.append([str(result.get("id") or ""), _error_text(result["errors"]), *row])

    # --- results --------------------------------------------------------------------------
    def results(self, job: IngestJob, kind: str) -> str:
        """One results file as CSV text in the job's delimiter and line ending."""
        if job.state not in ("JobComplete", "Failed"):
            raise _state_error(job, "give results before it is complete")
        if kind == "successfulResults":
            head, rows = ["sf__Id", "sf__Created", *job.header], job.successes
        elif kind == "failedResults":
            head, rows = ["sf__Id", "sf__Error", *job.header], job.failures
        else:
            head, rows = list(job.header), job.unprocessed
        return "".join(_csv_lines(job, head, reversed(rows)))


def _csv_lines(job: IngestJob, head: list[str], rows: Any) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=DELIMITERS[job.column_delimiter],
        lineterminator=LINE_ENDINGS[job.line_ending],
        quoting=csv.QUOTE_ALL,
    )
    for line in (head, *rows):
        writer.writerow(line)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _error_text(errors: list[dict[str, Any]]) -> str:
    """`CODE:message:field,field --` for each error, as Bulk API result files give them."""
    return " ".join(
        f"{e['statusCode']}:{e['message']}:{','.join(e.get('fields') or [])} --" for e in errors
    )


