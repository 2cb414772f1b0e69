"""``cider data build --config configs/data.yaml``: raw sources → the shared dataset directory.

Stages (resumable, see :mod:`applecider_data.stages`): alerts (files/tarballs/parquet and optionally
Kowalski), spectra (public parquet and optionally SkyPortal), light curves (public parquet), labels (CSV and
optionally SkyPortal classifications). The assembly step then matches objects across sources
(:mod:`applecider_data.split`), labels them, splits them and writes the format read by
``applecider_core.dataset.open_dataset``. ``manifest.json`` is removed first and written last, so a
directory with a manifest is always complete. Relative paths in the YAML are relative to the repository root
(the first folder above the config file holding a ``pyproject.toml`` with the workspace, else the config's
folder's parent).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from applecider_core.config import load_yaml, parse_overrides, to_dict

from . import stages
from .alertlike import AlertLikeConfig
from .assemble import assemble, summary_table
from .readers import iter_packets_with_source

logger = logging.getLogger(__name__)


@dataclass
class SourcesConfig:
    """Public-format inputs (paths; empty/None = not used)."""

    alerts: tuple[str, ...] = ()  # .avro files, folders, .tar.gz tarballs, alert parquet tables
    labels: str | None = None  # label CSV (objectId, label[, redshift])
    spectra: str | None = None  # spectra parquet (osc_spectra schema)
    light_curves: tuple[str, ...] = ()  # light-curve parquets (ztf_lightcurves schema), e.g. + bts_antares

    def __post_init__(self) -> None:
        for name in ("alerts", "light_curves"):  # one path given as a string is a list of one
            value = getattr(self, name)
            setattr(self, name, (value,) if isinstance(value, str) else tuple(value or ()))


@dataclass
class KowalskiConfig:
    """Alerts from a Kowalski archive (token/URI from the environment: KOWALSKI_TOKEN, KOWALSKI_MONGO_URI)."""

    enabled: bool = False
    transport: str = "http"  # "http" (Kowalski API) or "mongo" (direct pymongo)
    base_url: str = "https://kowalski.caltech.edu"
    database: str = "kowalski"
    object_ids: tuple[str, ...] = ()
    object_ids_from_labels: bool = False  # query every labelled object of sources.labels
    jd_start: float | None = None
    jd_end: float | None = None
    latest_n: int | None = None  # only the latest N alerts per object
    batch_size: int = 100


@dataclass
class SkyPortalConfig:
    """Spectra and classifications from SkyPortal/Fritz (token from SKYPORTAL_TOKEN)."""

    enabled: bool = False
    base_url: str = "https://fritz.science"
    object_ids: tuple[str, ...] = ()
    object_ids_from_labels: bool = False
    classifications: bool = True


@dataclass
class SplitConfig:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    seed: int = 42
    min_objects: int = 3  # strata smaller than this go entirely to train (reported in the manifest)


@dataclass
class BuildConfig:
    output_dir: str = "data/dataset"
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    kowalski: KowalskiConfig = field(default_factory=KowalskiConfig)
    skyportal: SkyPortalConfig = field(default_factory=SkyPortalConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    exclude_sources: tuple[str, ...] = ()  # e.g. ["dlangis/TDECat"] for a build free of CC BY-NC rows
    drop_altered_candidates: bool = False  # skip alerts whose candidate was altered by the source repository
    alert_like: AlertLikeConfig = field(default_factory=AlertLikeConfig)  # light curves made alert-like


def repo_root_for(config_path: Path) -> Path:
    for parent in config_path.resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "data_tools").is_dir():
            return parent
    return config_path.resolve().parent.parent


def _resolve(root: Path, path: str | None) -> Path | None:
    if path is None or path == "":
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else (root / p).resolve()


def _label_ids(config: BuildConfig, root: Path) -> list[str]:
    from .importers import read_labels

    path = _resolve(root, config.sources.labels)
    return sorted(read_labels(path).labels) if path else []


def _alert_packets(config: BuildConfig, root: Path):
    paths = [_resolve(root, p) for p in config.sources.alerts]
    yield from iter_packets_with_source(paths)
    if config.kowalski.enabled:
        from .kowalski import KowalskiSource

        k = config.kowalski
        ids = list(k.object_ids) + (_label_ids(config, root) if k.object_ids_from_labels else [])
        source = KowalskiSource.from_environment(k.transport, base_url=k.base_url, database=k.database)
        yield from source.iter_packets_with_source(ids, jd_start=k.jd_start, jd_end=k.jd_end, latest_n=k.latest_n,
                                                   batch_size=k.batch_size)  # fmt: skip


def _spectra_items(config: BuildConfig, root: Path):
    from .importers import iter_spectra

    path = _resolve(root, config.sources.spectra)
    if path:
        yield from iter_spectra(path, tuple(config.exclude_sources))
    if config.skyportal.enabled:
        from .skyportal import SkyPortalClient

        s = config.skyportal
        ids = list(s.object_ids) + (_label_ids(config, root) if s.object_ids_from_labels else [])
        client = SkyPortalClient.from_environment(s.base_url)
        yield from client.iter_spectra(ids)


def run_build(config: BuildConfig, root: Path) -> dict:
    """Run (or resume) every stage and assemble the dataset; returns the manifest."""
    out = _resolve(root, config.output_dir)
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    src = config.sources
    stage_results = {}
    alert_inputs = [_resolve(root, p) for p in src.alerts]
    if alert_inputs or config.kowalski.enabled:
        key = [stages.input_fingerprint(alert_inputs), to_dict(config.kowalski), config.drop_altered_candidates, 3]
        stage_results["alerts"] = stages.Stage(out, "alerts", key).run(
            lambda d: stages.alerts_stage(_alert_packets(config, root), d, config.drop_altered_candidates))
    spectra_path = _resolve(root, src.spectra)
    if spectra_path or config.skyportal.enabled:
        key = [stages.input_fingerprint([spectra_path] if spectra_path else []), to_dict(config.skyportal),
               list(config.exclude_sources), 1]  # fmt: skip
        stage_results["spectra"] = stages.Stage(out, "spectra", key).run(
            lambda d: stages.spectra_stage(_spectra_items(config, root), d))
    lc_paths = [_resolve(root, p) for p in src.light_curves]
    if lc_paths:
        key = [stages.input_fingerprint(lc_paths), list(config.exclude_sources), 2]
        stage_results["light_curves"] = stages.Stage(out, "light_curves", key).run(
            lambda d: stages.light_curve_stage(lc_paths, tuple(config.exclude_sources), d))
    labels_path = _resolve(root, src.labels)
    if labels_path:
        key = [stages.input_fingerprint([labels_path]), 1]
        stage_results["labels"] = stages.Stage(out, "labels", key).run(lambda d: stages.labels_stage(labels_path, d))
    if config.skyportal.enabled and config.skyportal.classifications:
        from .skyportal import SkyPortalClient, classifications_stage

        s = config.skyportal
        ids = list(s.object_ids) + (_label_ids(config, root) if s.object_ids_from_labels else [])
        stage_results["skyportal_labels"] = stages.Stage(out, "skyportal_labels", [sorted(ids), s.base_url, 1]).run(
            lambda d: classifications_stage(SkyPortalClient.from_environment(s.base_url), ids, d))
    return assemble(out, to_dict(config), to_dict(config.split), stage_results, config.alert_like)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider data build", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="YAML build config (configs/data.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--root", type=Path, default=None, help="folder relative paths are resolved against")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_yaml(args.config, BuildConfig, parse_overrides(args.set))
    root = args.root.resolve() if args.root else repo_root_for(args.config)
    start = time.perf_counter()
    manifest = run_build(config, root)
    print(summary_table(manifest))
    print(f"dataset written to {_resolve(root, config.output_dir)} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
