"""``cider stream`` settings: one strict dataclass filled from a YAML file and/or command-line flags.

YAML keys are the flag names with underscores (``bootstrap_servers``, ``topics``, ``batch_size``, ...);
a flag given on the command line wins over the file; unknown keys are an error (ConfigError).
Secrets never live here: the SkyPortal token comes from ``SKYPORTAL_TOKEN``, a Mongo URI may come from
``KOWALSKI_MONGO_URI``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from applecider_core.config import ConfigError
from applecider_core.engines import EngineError, parse_engines


@dataclass
class StreamSettings:
    bootstrap_servers: str = ""
    topics: tuple[str, ...] = ()
    group_id: str = ""
    models: str = "models"
    decoder: str = "auto"  # ztf | lsst | auto (see decoders.py)
    lsst_schema_dirs: tuple[str, ...] = ()  # Rubin writer schemas (<id>.avsc or Rubin's layout)
    schema_registry_url: str | None = None  # or a Confluent-compatible registry
    # sinks (any combination; at least one)
    output_topic: str | None = None
    dead_letter_topic: str | None = None
    out: str | None = None  # JSON lines
    errors_out: str | None = None  # JSON lines of records a sink could not write after its retries
    skyportal_url: str | None = None
    skyportal_origin: str = "applecider"
    skyportal_group_ids: tuple[int, ...] = ()
    skyportal_taxonomy_id: int | None = None  # post ML classifications too when set
    skyportal_max_retries: int = 6
    skyportal_backoff_s: float = 1.0
    mongo_uri: str | None = None
    mongo_database: str = "kowalski"
    mongo_collection: str = "ZTF_alerts"
    mongo_upsert: bool = False
    # batching and stopping
    batch_size: int = 256
    max_wait_s: float = 1.0
    max_messages: int | None = None
    idle_exit_s: float | None = None
    from_beginning: bool = False
    sink_retries: int = 5  # whole-batch retries of a sink that raised (transient failure) before giving up
    log_interval_s: float = 30.0
    stats_out: str | None = None
    # classifier
    device: str = "cpu"
    engine: str = "torch"  # one of applecider_core.engines.ENGINES, or per modality: onnxruntime,images=torch-bf16
    threads: int = 1  # torch intra-op threads; 0 = torch's choice (all cores). One: fastest under load (engines.py)
    history_cache_size: int = 100_000
    kafka: dict[str, str] = field(default_factory=dict)  # extra librdkafka settings (security.protocol, ...)

    def validate(self) -> StreamSettings:
        missing = [name for name in ("bootstrap_servers", "topics", "group_id") if not getattr(self, name)]
        if missing:
            raise ConfigError(f"cider stream: missing {', '.join('--' + m.replace('_', '-') for m in missing)}")
        if not (self.output_topic or self.out or self.skyportal_url or self.mongo_uri):
            raise ConfigError("cider stream: no sink; give --output-topic, --out, --skyportal-url and/or --mongo-uri")
        for name in ("batch_size", "sink_retries", "history_cache_size"):
            if getattr(self, name) < (0 if name == "sink_retries" else 1):
                raise ConfigError(f"cider stream: {name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ConfigError(f"cider stream: threads must be >= 0, got {self.threads}")
        try:
            parse_engines(self.engine)
        except EngineError as error:
            raise ConfigError(f"cider stream: {error}") from None
        if self.max_wait_s <= 0 or self.log_interval_s <= 0:
            raise ConfigError("cider stream: max_wait_s and log_interval_s must be > 0")
        return self
