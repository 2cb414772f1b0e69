"""``cider stream``: classify alerts from Kafka topics on a consumer group and write the records to sinks.

    cider stream --bootstrap-servers HOST:PORT --topic T [--topic ...] --group-id G --models DIR
                 [--output-topic T2] [--dead-letter-topic T3] [--out FILE.jsonl] [--skyportal-url URL]
                 [--mongo-uri URI] [--batch-size N] [--max-wait-s S] [--max-messages N] [--idle-exit-s S]
                 [--from-beginning] [--config stream.yaml]

Several processes with the same --group-id split the topics' partitions. SIGTERM/SIGINT finish the batch,
commit and exit 0. Exit 1 when a sink kept failing (nothing of that batch committed), 2 on bad settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from applecider_core.config import ConfigError, from_dict, to_dict
from applecider_core.engines import set_torch_threads

from .decoders import DecodeProcess
from .runner import StreamError, StreamRunner
from .settings import StreamSettings
from .sinks import DeadLetterSink, FailureLog, JsonLinesSink, KafkaSink

logger = logging.getLogger(__name__)
LIST_FLAGS = {"topic": "topics", "lsst_schema_dir": "lsst_schema_dirs", "skyportal_group_id": "skyportal_group_ids", "kafka_option": "kafka"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cider stream", description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--config", help="YAML file with any of the settings below (keys with underscores); flags win")
    add("--bootstrap-servers")
    add("--topic", action="append", help="topic to consume (repeatable)")
    add("--group-id")
    add("--models", help="directory with photometry/, images/, spectra/ models (default: models)")
    add("--decoder", choices=("auto", "ztf", "lsst"), help="message format (default: auto, by the first bytes)")
    add("--lsst-schema-dir", action="append", help="directory of Rubin writer schemas (repeatable)")
    add("--schema-registry-url", help="Confluent-compatible schema registry for wire-format schema ids")
    add("--output-topic", help="Kafka topic for the records (Avro, keyed by candid)")
    add("--dead-letter-topic", help="Kafka topic for the raw bytes of undecodable messages")
    add("--out", help="JSON lines file for the records")
    add("--errors-out", help="JSON lines file for records a sink could not write after its retries")
    add("--skyportal-url", help="SkyPortal/Fritz base URL (token from SKYPORTAL_TOKEN)")
    add("--skyportal-origin", help="annotation/classification origin (default: applecider)")
    add("--skyportal-group-id", type=int, action="append", help="SkyPortal group id to share with (repeatable)")
    add("--skyportal-taxonomy-id", type=int, help="also post ML classifications in this taxonomy")
    add("--mongo-uri", help="MongoDB URI for $set write-back (default: $KOWALSKI_MONGO_URI if --mongo is given)")
    add("--mongo", action="store_true", help="write back to Mongo at $KOWALSKI_MONGO_URI")
    add("--mongo-database")
    add("--mongo-collection")
    add("--batch-size", type=int)
    add("--max-wait-s", type=float, help="longest wait for a batch to fill (default 1)")
    add("--max-messages", type=int, help="stop after this many messages")
    add("--idle-exit-s", type=float, help="stop after this long without a message")
    add("--from-beginning", action="store_true", default=None, help="a new group starts at the oldest offsets")
    add("--log-interval-s", type=float, help="throughput/lag log interval (default 30)")
    add("--stats-out", help="JSON file with the final counts and the lag history")
    add("--device")
    add("--engine", metavar="ENGINE[,MODALITY=ENGINE...]",
        help="torch (default), torch-bf16, onnxruntime, onnxruntime-int8, onnxruntime-int8-static; or per modality, "
             "e.g. onnxruntime,images=onnxruntime-int8-static (see cider classify --engine)")
    add("--threads", type=int, help="torch CPU threads (default 1, the other core decodes the next batch; 0 = torch's choice)")
    add("--kafka-option", action="append", metavar="KEY=VALUE", help="extra librdkafka setting (repeatable)")
    return p


def resolve_settings(argv: Sequence[str] | None) -> StreamSettings:
    """YAML (``--config``) overlaid with the flags given → validated settings (ConfigError on bad input)."""
    args = vars(_parser().parse_args(argv))
    config_path, use_env_mongo = args.pop("config"), args.pop("mongo")
    data: dict[str, Any] = {}
    if config_path:
        try:
            data = yaml.safe_load(Path(config_path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cider stream: cannot read --config {config_path}: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"cider stream: {config_path} must hold a mapping of settings")
    for flag, value in args.items():
        if value is None:
            continue
        if flag == "kafka_option":
            try:
                value = dict(item.split("=", 1) for item in value)
            except ValueError:
                raise ConfigError(f"--kafka-option takes KEY=VALUE, got {value}") from None
            value = {**data.get("kafka", {}), **value}
        data[LIST_FLAGS.get(flag, flag)] = value
    if use_env_mongo and not data.get("mongo_uri"):
        data["mongo_uri"] = os.environ.get("KOWALSKI_MONGO_URI") or ""
        if not data["mongo_uri"]:
            raise ConfigError("--mongo needs KOWALSKI_MONGO_URI in the environment (or give --mongo-uri)")
    return from_dict(StreamSettings, data).validate()


def model_versions(models_dir: str | Path, modalities: Sequence[str]) -> dict[str, str]:
    """modality → ``model_type:sha256[:12]`` of its weights (what the records were computed with)."""
    from applecider_stream import __version__

    versions = {"applecider": __version__}
    for modality in modalities:
        folder = Path(models_dir) / modality
        model_type = json.loads((folder / "config.json").read_text()).get("model_type", modality)
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:12]
        versions[modality] = f"{model_type}:{digest}"
    return versions


def kafka_config(settings: StreamSettings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers, **settings.kafka}


def build_sinks(settings: StreamSettings, versions: dict[str, str], failures: FailureLog) -> list:
    sinks: list = []
    if settings.output_topic:
        sinks.append(KafkaSink(kafka_config(settings), settings.output_topic, versions))
    if settings.out:
        sinks.append(JsonLinesSink(settings.out))
    if settings.skyportal_url:
        from applecider_data.skyportal import SkyPortalClient

        from .writeback import SkyPortalSink

        client = SkyPortalClient.from_environment(settings.skyportal_url)
        client.max_retries, client.backoff_s = settings.skyportal_max_retries, settings.skyportal_backoff_s
        sinks.append(SkyPortalSink(client, failures, versions, settings.skyportal_origin,
                                   settings.skyportal_group_ids, settings.skyportal_taxonomy_id))  # fmt: skip
    if settings.mongo_uri:
        from applecider_data.kowalski import MongoTransport

        from .writeback import MongoSink

        sinks.append(MongoSink(MongoTransport(settings.mongo_uri, settings.mongo_database), versions,
                               settings.mongo_collection, settings.mongo_upsert))  # fmt: skip
    return sinks


def _consumer(settings: StreamSettings):
    from confluent_kafka import Consumer

    consumer = Consumer({**kafka_config(settings), "group.id": settings.group_id, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest" if settings.from_beginning else "latest",
                         "enable.partition.eof": False})  # fmt: skip

    def assigned(_consumer, partitions) -> None:
        logger.info("assigned partitions %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def revoked(_consumer, partitions) -> None:
        logger.info("revoked partitions %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    consumer.subscribe(list(settings.topics), on_assign=assigned, on_revoke=revoked)
    return consumer


def main(argv: Sequence[str] | None = None) -> int:
    settings = resolve_settings(argv)
    set_torch_threads(settings.engine, settings.threads)
    from applecider_fusion.classifier import Classifier, HistoryCache

    classifier = Classifier.from_dir(settings.models, device=settings.device, engine=settings.engine,
                                     threads=settings.threads)
    classifier.history = HistoryCache(settings.history_cache_size)
    versions = model_versions(settings.models, list(classifier.runners))
    failures = FailureLog(settings.errors_out)
    sinks = build_sinks(settings, versions, failures)
    dead_letter = DeadLetterSink(kafka_config(settings), settings.dead_letter_topic) if settings.dead_letter_topic else None
    logger.info("cider stream settings: %s", json.dumps(to_dict(settings)))
    decoding = DecodeProcess(settings.decoder, settings.lsst_schema_dirs, settings.schema_registry_url,
                             with_cutouts="images" in classifier.runners)  # fmt: skip
    consumer = _consumer(settings)
    runner = StreamRunner(consumer, classifier, decoding, sinks, settings, dead_letter, failures)
    signal.signal(signal.SIGTERM, runner.request_stop)
    signal.signal(signal.SIGINT, runner.request_stop)
    code = 0
    try:
        runner.run()
    except StreamError as error:
        logger.error("%s; exiting without committing the batch", error)
        code = 1
    finally:
        consumer.close()
        decoding.close()
        for sink in [*sinks, *([dead_letter] if dead_letter else [])]:
            sink.close()
        if settings.stats_out:
            stats = {**runner.stats.as_dict(failures.count), "settings": to_dict(settings), "exit_code": code}
            Path(settings.stats_out).write_text(json.dumps(stats, indent=1))
    return code
