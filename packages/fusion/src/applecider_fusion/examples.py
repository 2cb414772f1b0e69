"""``cider examples --out DIR``: write synthetic example alert packets (real Avro, ZTF schema 4.01).

The packets are made by ``applecider_data.synthetic`` from a fixed seed: a rising-then-fading transient with
30-day history, upper limits and gzip-FITS cutouts. ``--spectra N`` also writes ``DIR/../spectra.csv`` with a
synthetic SN-like spectrum (z = 0.05) for the first N objects, in the long CSV layout ``cider classify
--spectra`` reads. All of it is synthetic, not ZTF data; it exists so that the demo runs offline without
copying any real alert into the repository.
"""

from __future__ import annotations

import argparse
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from applecider_data import iter_packets
from applecider_data.synthetic import make_spectrum, write_alert_files


def write_spectra_csv(path: Path, alert_files: Sequence[Path], seed: int = 0) -> Path:
    """One synthetic spectrum per object of ``alert_files`` (``<candid>.avro``), as a long CSV."""
    rng = np.random.default_rng(seed)
    frames = []
    for alert_file in alert_files:
        object_id = next(iter_packets(alert_file))["objectId"]
        wavelength, flux = make_spectrum(rng, redshift=0.05)
        frames.append(pd.DataFrame({"objectId": object_id, "spectrum_id": f"{object_id}_synthetic",
                                    "wavelength_aa": wavelength, "flux": flux, "redshift": 0.05}))
    pd.concat(frames).to_csv(path, index=False)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider examples", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for <candid>.avro files")
    parser.add_argument("-n", "--number", type=int, default=24, help="number of packets (default 24)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spectra", type=int, default=0, metavar="N",
                        help="also write spectra.csv (next to --out) with a synthetic spectrum for N objects")
    parser.add_argument("--tarball", action="store_true", help="also pack them as a nightly-style .tar.gz")
    args = parser.parse_args(argv)
    if args.number < 1:
        parser.error("--number must be >= 1")
    paths = write_alert_files(args.out, args.number, args.seed)
    print(f"wrote {len(paths)} synthetic alert packets to {args.out}")
    if args.spectra:
        path = write_spectra_csv(Path(args.out).parent / "spectra.csv", paths[: args.spectra], args.seed)
        print(f"and synthetic spectra for {min(args.spectra, len(paths))} objects in {path}")
    if args.tarball:
        tarball = Path(args.out).with_suffix(".tar.gz")
        with tarfile.open(tarball, "w:gz") as archive:
            for path in paths:
                archive.add(path, arcname=path.name)
        print(f"and {tarball}")
    return 0
