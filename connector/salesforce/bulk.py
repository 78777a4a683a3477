"""Bulk API 2.0 upserts for backfills: one ingest job per 100 MB of CSV, each record's outcome
returned as the same `WriteResult` a collection call gives, so the push settles both alike.

    results = client.bulk_upsert("Lead", records, "Handshake_Id__c", auto_assign=False)

A job is: create (POST jobs/ingest), upload the CSV once (PUT .../batches), close
(PATCH state UploadComplete), read its state with a doubling wait until it is JobComplete,
Failed or Aborted, then read the result files. Every request goes through the client's
session (the retry and rate policy) and is counted on `client.calls` like any other call:
this module asks of the client only the few calls `BulkSession` names, so the client can
import it without this module importing the client.

Why not simple-salesforce's `sf.bulk2`: it sleeps on the wall clock between polls, joins the
whole CSV into one string, does not pass `assignmentRuleId`, and its calls would bypass the
allocation governor.

What differs from collections, and how the results are made the same:
- Result rows come in no set order: they are matched to the input by the external id column.
- A DUPLICATES_DETECTED row names no matched record (the result file has no duplicateResult):
  the records with that email are looked up (one batched SOQL) and named as the matches,
  Leads before Contacts as the duplicate rule lists them.
- A column naming no field fails the whole job ("Field name not found : X"). As for collection
  calls, a record naming a field the (already read) describe lacks is refused unsent; when the
  describe is not known, the records carrying the field are refused with the INVALID_FIELD
  error a collection call gives and the others are sent again in a job without the column.
- Rows the job never reached (aborted, batch allocation spent) come back as retriable
  BULK_RECORD_UNPROCESSED rejections: the next push sends them again.
- The Lead assignment rule runs only when the job names it: `auto_assign` reads the org's
  active Lead AssignmentRule once and passes its id.
- A second upload into one job makes the close fail (a retried PUT may do that): the job is
  aborted (nothing was processed) and the records go into a new job, once.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any, Protocol

import requests

from connector.errors import RequestFailed
from connector.http import HttpPolicy
from connector.salesforce import settings as ss
from connector.salesforce.errors import classify_record_errors
from connector.salesforce.records import EmailMatches, WriteResult
from connector.salesforce.settings import SALESFORCE_SYSTEM

__all__ = ["BulkJob", "BulkSession", "bulk_upsert", "csv_value", "parse_result_error"]

log = logging.getLogger("connector.salesforce.bulk")

_FIELD_NOT_FOUND = re.compile(r"Field name not found\s*:\s*(\S+)")
_FIELDS = re.compile(r"^[\w.,]*$")


class BulkSession(Protocol):
    """What a bulk upsert needs of `SalesforceClient`: its policy (for the clock the polls wait
    on), counted REST calls, the fields a describe read this run, and matching by email."""

    @property
    def policy(self) -> HttpPolicy: ...

    def rest_call(
        self, kind: str, what: str, method: str, path: str, **kwargs: Any
    ) -> requests.Response: ...

    def known_fields(self, sobject: str) -> set[str] | None: ...

    def match_emails(self, emails: Iterable[str]) -> EmailMatches: ...


@dataclass(frozen=True, slots=True)
class BulkJob:
    """An ingest job as Get Job Info reports it."""

    id: str
    state: str
    processed: int = 0
    failed: int = 0
    error_message: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BulkJob:
        return cls(
            id=str(body["id"]),
            state=str(body.get("state") or ""),
            processed=int(body.get("numberRecordsProcessed") or 0),
            failed=int(body.get("numberRecordsFailed") or 0),
            error_message=body.get("errorMessage") or None,
        )


def csv_value(value: Any) -> str:
    """One value as Bulk API CSV takes it: null (and blank, which REST saves as null) is
    `#N/A`, because an empty cell would leave the field unchanged."""
    if value is None or value == "":
        return ss.BULK_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def parse_result_error(text: str) -> list[dict[str, Any]]:
    """`STATUS_CODE:message:field,field --` (one per error) as collection-style errors."""
    errors: list[dict[str, Any]] = []
    for part in re.split(r"\s--(?:\s+|$)", text.strip()):
        part = part.strip()
        if not part:
            continue
        code, _, rest = part.partition(":")
        message, _, fields = rest.rpartition(":")
        if not message or not _FIELDS.match(fields.strip()):
            message, fields = rest, ""
        errors.append(
            {
                "statusCode": code.strip() or "UNKNOWN",
                "message": message.strip(),
                "fields": [f for f in fields.strip().split(",") if f],
            }
        )
    return errors


class _SpooledCsv:
    """CSV bytes spooled to memory, then disk; iterable from the start again on every pass,
    so the policy can re-send the upload after a dropped connection."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=ss.BULK_SPOOL_BYTES)  # noqa: SIM115
        self.size = 0
        self._line = io.StringIO()
        self._writer = csv.writer(self._line, lineterminator="\n")
        self.write(self.encode(columns))

    def encode(self, values: Sequence[str]) -> bytes:
        """One CSV row as UTF-8 bytes."""
        self._line.seek(0)
        self._line.truncate()
        self._writer.writerow(values)
        return self._line.getvalue().encode("utf-8")

    def write(self, row: bytes) -> None:
        self.file.write(row)
        self.size += len(row)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        self.file.seek(0)
        while block := self.file.read(64 * 1024):
            yield block

    def close(self) -> None:
        self.file.close()


def _columns(records: Sequence[Mapping[str, Any]], key_field: str) -> list[str]:
    seen = dict.fromkeys([key_field])
    for record in records:
        seen.update(dict.fromkeys(k for k in record if k != "attributes"))
    return list(seen)


def _jobs(
    records: Sequence[Mapping[str, Any]], indexes: Sequence[int], columns: list[str]
) -> Iterator[tuple[list[int], _SpooledCsv]]:
    """The records at `indexes` as CSV uploads of at most BULK_MAX_UPLOAD_BYTES, each with
    the input indexes it carries."""
    upload, carried = _SpooledCsv(columns), list[int]()
    for index in indexes:
        row = upload.encode([csv_value(records[index].get(c)) for c in columns])
        if carried and upload.size + len(row) > ss.BULK_MAX_UPLOAD_BYTES:
            yield carried, upload
            upload, carried = _SpooledCsv(columns), []
        upload.write(row)
        carried.append(index)
    if carried:
        yield carried, upload
    else:
        upload.close()


class _Upsert:
    """One `bulk_upsert` call: its jobs, their results, and the records' outcomes."""

    def __init__(
        self,
        client: BulkSession,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        ext: str,
        assignment_rule: str | None,
    ) -> None:
        self.client = client
        self.sobject = sobject
        self.records = records
        self.ext = ext
        self.assignment_rule = assignment_rule
        self.results: dict[int, WriteResult] = {}

    def run(self) -> list[WriteResult]:
        sendable = self._refuse_unknown_fields()
        self._run_jobs(sendable, _columns([self.records[i] for i in sendable], self.ext))
        self._resolve_duplicates()
        return [self.results[i] for i in range(len(self.records))]

    def _refuse_unknown_fields(self) -> list[int]:
        """As for collection calls: once the object's describe is read, a record naming a
        field the object lacks is refused unsent (a column naming no field fails the whole
        job). Returns the indexes of the records to send."""
        known = self.client.known_fields(self.sobject)
        sendable: list[int] = []
        for index, record in enumerate(self.records):
            unknown = [k for k in record if k != "attributes" and k.lower() not in known] \
                if known is not None else []
            if unknown:
                self._reject(index, [_no_such_column(name, self.sobject) for name in unknown],
                             None)
            else:
                sendable.append(index)
        return sendable

    def _run_jobs(self, indexes: Sequence[int], columns: list[str]) -> None:
        for carried, upload in _jobs(self.records, indexes, columns):
            try:
                self._job(carried, upload, columns)
            finally:
                upload.close()

    # --- one job ------------------------------------------------------------------------------
    def _job(
        self, indexes: list[int], upload: _SpooledCsv, columns: list[str], *, again: bool = True
    ) -> None:
        job_id = self._create()
        try:
            self._send(
                "PUT",
                ss.BULK_BATCHES.format(job_id=job_id),
                f"upload {len(indexes)} {self.sobject} records to bulk job {job_id}",
                data=upload,
                headers={"Content-Type": "text/csv; charset=UTF-8"},
            )
            self._send(
                "PATCH",
                ss.BULK_JOB.format(job_id=job_id),
                f"close bulk job {job_id}",
                json={"state": "UploadComplete"},
            )
        except RequestFailed as exc:
            self._abort(job_id)
            if again and _multiple_uploads(exc):
                log.warning("bulk job %s got its upload twice; sending it in a new job", job_id)
                self._job(indexes, upload, columns, again=False)
                return
            raise
        job = self._wait(job_id)
        unknown = _unknown_column(job, columns, self.ext)
        if unknown is not None:
            self._without_column(indexes, columns, unknown)
            return
        self._settle(job, indexes)

    def _without_column(self, indexes: list[int], columns: list[str], unknown: str) -> None:
        """A column named no field and failed the job. As a collection call refuses only the
        records that carry the field, so here: those are refused, the others are sent again
        in a job without the column."""
        carriers = [i for i in indexes if unknown in self.records[i]]
        for index in carriers:
            self._reject(index, [_no_such_column(unknown, self.sobject)], None)
        log.warning(
            "bulk %s job: field %s does not exist; %d record(s) carrying it refused, %d sent "
            "again without it", self.sobject, unknown, len(carriers), len(indexes) - len(carriers)
        )
        rest = [i for i in indexes if unknown not in self.records[i]]
        if rest:
            self._run_jobs(rest, [c for c in columns if c != unknown])

    def _create(self) -> str:
        body: dict[str, Any] = {
            "object": self.sobject,
            "operation": "upsert",
            "externalIdFieldName": self.ext,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if self.assignment_rule:
            body["assignmentRuleId"] = self.assignment_rule
        answer = self._send("POST", ss.BULK_INGEST, f"create a bulk {self.sobject} job", json=body)
        return str(answer.json()["id"])

    def _abort(self, job_id: str) -> None:
        try:
            self._send(
                "PATCH",
                ss.BULK_JOB.format(job_id=job_id),
                f"abort bulk job {job_id}",
                json={"state": "Aborted"},
            )
        except RequestFailed:
            log.warning("bulk job %s could not be aborted", job_id)

    def _wait(self, job_id: str) -> BulkJob:
        """Read the job's state until it is final, waiting longer each time."""
        clock = self.client.policy.clock
        started = clock.monotonic()
        delay = ss.BULK_POLL_FIRST_SECONDS
        while True:
            answer = self._send("GET", ss.BULK_JOB.format(job_id=job_id), f"bulk job {job_id}")
            job = BulkJob.from_json(answer.json())
            if job.state in ss.BULK_TERMINAL_STATES:
                return job
            if clock.monotonic() - started > ss.BULK_POLL_TIMEOUT.total_seconds():
                raise RequestFailed(
                    f"bulk job {job_id} is still {job.state} after "
                    f"{ss.BULK_POLL_TIMEOUT}; its records are sent again by the next push",
                    system=SALESFORCE_SYSTEM,
                )
            clock.sleep(delay)
            delay = min(delay * 2, ss.BULK_POLL_MAX_SECONDS)

    def _rows(self, job_id: str, kind: str) -> Iterator[dict[str, str]]:
        answer = self._send(
            "GET", ss.BULK_RESULTS.format(job_id=job_id, kind=kind), f"{kind} of bulk job {job_id}"
        )
        answer.encoding = "utf-8"
        yield from csv.DictReader(io.StringIO(answer.text))

    # --- outcomes -----------------------------------------------------------------------------
    def _settle(self, job: BulkJob, indexes: list[int]) -> None:
        waiting: dict[str, deque[int]] = defaultdict(deque)
        for index in indexes:
            waiting[csv_value(self.records[index].get(self.ext))].append(index)

        def take(row: Mapping[str, str]) -> int | None:
            queue = waiting.get(row.get(self.ext, ""))
            return queue.popleft() if queue else None

        failed = job.failed
        if job.processed - failed > 0:
            for row in self._rows(job.id, "successfulResults"):
                done = take(row)
                if done is not None:
                    self.results[done] = WriteResult(
                        done,
                        self._key(done),
                        row.get("sf__Id") or None,
                        True,
                        row.get("sf__Created", "").lower() == "true",
                    )
        if failed:
            for row in self._rows(job.id, "failedResults"):
                refused = take(row)
                if refused is not None:
                    self._reject(
                        refused,
                        parse_result_error(row.get("sf__Error", "")),
                        row.get("sf__Id") or None,
                    )
        missing = [i for i in indexes if i not in self.results]
        if missing:
            errors = self._unprocessed_errors(job)
            for index in missing:
                self._reject(index, errors, None)

    def _unprocessed_errors(self, job: BulkJob) -> list[dict[str, Any]]:
        """Why the job left records unprocessed, as the errors a collection call would give."""
        found = _FIELD_NOT_FOUND.search(job.error_message or "")
        if found:
            return [_no_such_column(found.group(1), self.sobject)]
        why = job.error_message or f"the job ended {job.state}"
        return [
            {
                "statusCode": "BULK_RECORD_UNPROCESSED",
                "message": f"bulk job {job.id}: {why}",
                "fields": [],
            }
        ]

    def _key(self, index: int) -> str | None:
        key = self.records[index].get(self.ext)
        return str(key) if key not in (None, "") else None

    def _reject(self, index: int, errors: list[dict[str, Any]], record_id: str | None) -> None:
        rejection = classify_record_errors(
            errors, sobject=self.sobject, record_key=self._key(index), values=self.records[index]
        )
        self.results[index] = WriteResult(
            index, self._key(index), record_id, False, None, rejection
        )

    def _resolve_duplicates(self) -> None:
        """Name the records a duplicate rule matched: the result file does not."""
        hits = {
            i: str(self.records[i].get(ss.EMAIL) or "")
            for i, r in self.results.items()
            if r.rejection is not None
            and r.rejection.code == "DUPLICATES_DETECTED"
            and self.records[i].get(ss.EMAIL)
        }
        if not hits:
            return
        matches = self.client.match_emails(hits.values())
        for index, email in hits.items():
            found = [(ss.LEAD, lead.id) for lead in matches.open_leads_for(email)]
            found += [(ss.CONTACT, contact.id) for contact in matches.contacts_for(email)]
            if not found:
                continue
            result = self.results[index]
            assert result.rejection is not None
            errors = [
                {
                    "statusCode": e.code,
                    "message": e.message,
                    "fields": list(e.fields),
                    "duplicateResult": {
                        "matchResults": [
                            {
                                "entityType": sobject,
                                "matchRecords": [
                                    {"record": {"attributes": {"type": sobject}, "Id": rid}}
                                ],
                            }
                            for sobject, rid in found
                        ]
                    },
                }
                for e in result.rejection.errors
            ]
            self.results[index] = WriteResult(
                index,
                result.key,
                result.id,
                False,
                None,
                classify_record_errors(
                    errors,
                    sobject=self.sobject,
                    record_key=result.key,
                    values=self.records[index],
                ),
            )

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return self.client.rest_call("bulk", what, method, path, **kwargs)


def _no_such_column(field: str, sobject: str) -> dict[str, Any]:
    """The error a collection call gives a record that names a field the object lacks."""
    return {
        "statusCode": "INVALID_FIELD",
        "message": f"No such column '{field}' on sobject of type {sobject}",
        "fields": [field],
    }


def _unknown_column(job: BulkJob, columns: list[str], key_field: str) -> str | None:
    """The column a failed job says names no field, if it is one of ours (not the key)."""
    if job.state != "Failed":
        return None
    found = _FIELD_NOT_FOUND.search(job.error_message or "")
    if not found:
        return None
    named = found.group(1).lower()
    return next((c for c in columns if c.lower() == named and c != key_field), None)


def _multiple_uploads(exc: RequestFailed) -> bool:
    body = exc.body if isinstance(exc.body, list) else []
    return exc.status == 400 and any(
        isinstance(item, Mapping)
        and item.get("errorCode") == "INVALIDJOB"
        and "PUT" in str(item.get("message") or "")
        for item in body
    )


def bulk_upsert(
    client: BulkSession,
    sobject: str,
    records: Sequence[Mapping[str, Any]],
    external_id_field: str,
    *,
    assignment_rule: str | None = None,
) -> list[WriteResult]:
    """Upsert `records` by `external_id_field` through Bulk API 2.0; one `WriteResult` per
    record, in input order, as `SalesforceClient.upsert` gives them."""
    if not records:
        return []
    return _Upsert(client, sobject, records, external_id_field, assignment_rule).run()
