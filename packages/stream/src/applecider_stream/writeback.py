"""Write-back sinks: SkyPortal/Fritz (annotations, ML classifications) and Kowalski/BOOM Mongo updates.

SkyPortal, per object of a batch (its latest classified alert): the annotation with our ``origin`` is
updated if it exists (``PUT /api/sources/{obj}/annotations/{id}``), else created (``POST
/api/sources/{obj}/annotations``); with a taxonomy id, the fused top class is posted as a classification with
``ml: true`` and its probability, again updated in place when ours exists. The client (applecider_data's
SkyPortalClient, token from ``SKYPORTAL_TOKEN``) retries 429 with Retry-After and 5xx with backoff, which
delays the batch's commit; a record still refused after that goes to the failure log with the reason.

Mongo: ``bulk_write`` of the pure ``$set`` builders of ``applecider_data.kowalski`` on the alert documents
(``_id`` = candid). A pymongo failure is a SinkError: the runner retries the batch and does not commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from applecider_data.errors import SourceError
from applecider_data.kowalski import MongoTransport, classification_requests
from applecider_data.skyportal import SkyPortalClient

from .sinks import FailureLog, SinkError

logger = logging.getLogger(__name__)


def annotation_data(record: Mapping[str, Any], model_versions: Mapping[str, str]) -> dict:
    """Flat annotation payload (SkyPortal filters and shows flat keys best)."""
    data = {"candid": record["candid"], "mjd": record["mjd"], "top_class": record["top_class"],
            "score": record["score"], "modalities": "+".join(record["modalities"]),
            "model_version": ";".join(f"{k}={v}" for k, v in sorted(model_versions.items()))}  # fmt: skip
    data.update({f"p_{name}": p for name, p in (record.get("fused") or {}).items()})
    return data


def latest_per_object(records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest (by mjd, then candid) classified record of each object."""
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("top_class") is None or not record.get("objectId"):
            continue
        seen = latest.get(record["objectId"])
        if seen is None or (record["mjd"], record["candid"]) > (seen["mjd"], seen["candid"]):
            latest[record["objectId"]] = record
    return latest


class SkyPortalSink:
    name = "skyportal"

    def __init__(self, client: SkyPortalClient, failures: FailureLog, model_versions: Mapping[str, str],
                 origin: str = "applecider", group_ids: Sequence[int] = (), taxonomy_id: int | None = None) -> None:
        self.client, self.failures, self.model_versions = client, failures, dict(model_versions)
        self.origin, self.group_ids, self.taxonomy_id = origin, list(group_ids), taxonomy_id

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        for obj_id, record in latest_per_object(records).items():
            try:
                self._annotate(obj_id, record)
                if self.taxonomy_id is not None:
                    self._classify(obj_id, record)
            except SourceError as error:
                self.failures.add(self.name, str(error), record)

    def _annotate(self, obj_id: str, record: Mapping[str, Any]) -> None:
        payload = {"origin": self.origin, "data": annotation_data(record, self.model_versions)}
        if self.group_ids:
            payload["group_ids"] = self.group_ids
        existing = [a for a in self.client.get(f"/api/sources/{obj_id}/annotations") or []
                    if a.get("origin") == self.origin]  # fmt: skip
        if existing:
            self.client.request("PUT", f"/api/sources/{obj_id}/annotations/{existing[0]['id']}", payload=payload)
        else:
            self.client.request("POST", f"/api/sources/{obj_id}/annotations", payload=payload)

    def _classify(self, obj_id: str, record: Mapping[str, Any]) -> None:
        payload = {"obj_id": obj_id, "classification": record["top_class"], "taxonomy_id": self.taxonomy_id,
                   "probability": record["score"], "ml": True, "origin": self.origin}  # fmt: skip
        if self.group_ids:
            payload["group_ids"] = self.group_ids
        ours = [c for c in self.client.get(f"/api/sources/{obj_id}/classifications") or []
                if c.get("ml") and c.get("origin") == self.origin and c.get("taxonomy_id") == self.taxonomy_id]  # fmt: skip
        if ours:
            self.client.request("PUT", f"/api/classification/{ours[0]['id']}", payload=payload)
        else:
            self.client.request("POST", "/api/classification", payload=payload)

    def close(self) -> None:
        self.client.session.close()


class MongoSink:
    name = "mongo"

    def __init__(self, transport: MongoTransport, model_versions: Mapping[str, str], collection: str = "ZTF_alerts",
                 upsert: bool = False) -> None:  # fmt: skip
        self.transport, self.model_versions, self.collection, self.upsert = transport, dict(model_versions), collection, upsert

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        import pymongo.errors

        requests = classification_requests(records, self.model_versions, upsert=self.upsert)
        try:
            self.transport.bulk_write(self.collection, requests)
        except pymongo.errors.PyMongoError as error:
            raise SinkError(f"mongo {self.collection}: {type(error).__name__}: {error}") from None

    def close(self) -> None:
        self.transport.client.close()
