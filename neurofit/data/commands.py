"""``neurofit data ...``: generate, inspect, validate, list, fetch and verify datasets.

Only argparse at import time: the work (and numpy, xarray, torch) is imported when a command runs, so that
``neurofit --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="generate, inspect, validate and fetch datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: data.print_help() or 2)

    gen = data_sub.add_parser("generate", help="generate the embedded synthetic dataset and write it as NetCDF")
    gen.add_argument("dataset", choices=["synthetic-ventral"], help="the synthetic dataset to generate")
    gen.add_argument("--size", default="default",
                     help="small (192 images), default (768), majajhong (5760) or a number of images")
    gen.add_argument("--seed", type=int, default=0, help="seed of stimuli, generator and spike noise (default: 0)")
    gen.add_argument("--repetitions", type=int, default=None, help="repetitions per stimulus (default: 20)")
    gen.add_argument("--averaged", action="store_true", help="write repetition means instead of trial counts")
    gen.add_argument("--out", type=Path, default=Path("synthetic-ventral.nc"),
                     help="recording NetCDF path; the stimulus set goes beside it (default: synthetic-ventral.nc)")
    gen.set_defaults(func=_generate)

    info = data_sub.add_parser("info", help="dims, regions, bins, repetitions and per-site reliability")
    info.add_argument("path", type=Path, help="a recording NetCDF file")
    info.set_defaults(func=_info)

    val = data_sub.add_parser("validate", help="check a recording against the data contract")
    val.add_argument("path", type=Path, help="a recording NetCDF file")
    val.add_argument("--stimuli", type=Path, default=None,
                     help="the stimulus set CSV whose ids the recording must use (default: PATH's .csv beside it)")
    val.set_defaults(func=_validate)

    listing = data_sub.add_parser("list", help="datasets known from the manifests, and which are local")
    listing.set_defaults(func=_list)

    fetch = data_sub.add_parser("fetch", help="fetch a dataset (mirror, cache, then URL) and verify sha256")
    fetch.add_argument("dataset_ids", nargs="+", metavar="ID", help="dataset id(s) (see `neurofit data list`)")
    fetch.set_defaults(func=_fetch)

    verify = data_sub.add_parser("verify", help="check local copies of a dataset's files; exit 1 on any mismatch")
    verify.add_argument("dataset_ids", nargs="+", metavar="ID", help="dataset id(s) (see `neurofit data list`)")
    verify.set_defaults(func=_verify)

    nwb = data_sub.add_parser("from-nwb", help="bin an NWB file's spike times around its stimulus presentations "
                                               "into a recording NetCDF (needs neurofit[nwb])")
    nwb.add_argument("path", type=Path, metavar="FILE", help="the .nwb file")
    nwb.add_argument("--units", default="units", metavar="TABLE",
                     help="the Units table: 'units' or the name of one in a processing module (default: units)")
    nwb.add_argument("--stimulus-table", default="trials", metavar="TABLE",
                     help="the TimeIntervals table of presentations: trials, epochs or a table under intervals "
                          "(default: trials)")
    nwb.add_argument("--stimulus-column", default=None, metavar="COLUMN",
                     help="its column of stimulus ids (default: the first of stimulus_id, image_id, "
                          "stimulus_name, image_name, stimulus, image)")
    nwb.add_argument("--bin-ms", type=float, default=10.0, help="bin width in ms (default: 10)")
    nwb.add_argument("--window", type=float, nargs=2, default=None, metavar=("START", "END"),
                     help="ms after each presentation's start_time (default: 0 to the shortest presentation)")
    nwb.add_argument("--region", nargs="+", default=None, metavar="REGION|LOCATION=REGION",
                     help="one region for every unit, or electrode locations mapped to regions (LOCATION= "
                          "leaves those units out); default: the electrodes' location")
    nwb.add_argument("--rates", action="store_true", help="store spikes/s instead of spike counts")
    nwb.add_argument("--out", type=Path, default=None, help="recording NetCDF path (default: FILE with .nc)")
    nwb.set_defaults(func=_from_nwb)


def _generate(args: argparse.Namespace) -> int:
    from neurofit.data.synthetic_files import write_synthetic_ventral

    print(write_synthetic_ventral(args.out, args.size, seed=args.seed, repetitions=args.repetitions,
                                  averaged=args.averaged))
    return 0


def _file_not_id(path: Path, command: str) -> None:
    """A dataset id where a file is wanted: say which commands take the id."""
    if path.exists():
        return
    from neurofit.data.manifest import list_manifests
    from neurofit.errors import NeurofitError

    name = str(path)
    if name == "synthetic-ventral":
        raise NeurofitError(f"data {command} wants a recording file, and {name!r} is the embedded dataset: write it "
                            f"with `neurofit data generate synthetic-ventral --out FILE.nc`, then `neurofit data "
                            f"{command} FILE.nc`")
    if name in list_manifests():
        raise NeurofitError(f"data {command} wants a recording file, and {name!r} is a dataset id: for a dataset id "
                            f"use `neurofit data verify {name}` (its files and checksums) or `neurofit data fetch "
                            f"{name}`")


def _info(args: argparse.Namespace) -> int:
    from neurofit.data.info import describe_recording

    _file_not_id(args.path, "info")
    print(describe_recording(args.path))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from neurofit.data.info import validate_file

    _file_not_id(args.path, "validate")
    print(validate_file(args.path, args.stimuli))
    return 0


def _list(args: argparse.Namespace) -> int:
    from neurofit.data.fetch import list_datasets

    rows = list_datasets()
    width = max((len(row["id"]) for row in rows), default=2)
    print(f"{'id':<{width}}  {'files':>5}  {'MB':>7}  {'local':>7}  {'loader':<14}  license")
    for row in rows:
        local = f"{row['local_files']}/{row['n_files']}"
        print(f"{row['id']:<{width}}  {row['n_files']:>5}  {row['size_bytes'] / 1e6:>7.1f}  {local:>7}  "
              f"{row['loader']:<14}  {row['license']}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from neurofit.data.fetch import fetch_dataset

    for dataset_id in args.dataset_ids:
        paths = fetch_dataset(dataset_id)
        roots = sorted({str(path)[: -len(rel)].rstrip("/") for rel, path in paths.items()})
        print(f"{dataset_id}: {len(paths)} files verified (sha256) under {', '.join(roots)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from neurofit.data.fetch import verify_dataset

    ok = True
    for dataset_id in args.dataset_ids:
        report = verify_dataset(dataset_id)
        print(report.summary())
        ok = ok and report.ok
    return 0 if ok else 1


def _from_nwb(args: argparse.Namespace) -> int:
    from neurofit.data.io import write_recording
    from neurofit.data.loaders.nwb import recording_from_nwb
    from neurofit.errors import NeurofitError

    region: str | dict[str, str | None] | None = None
    if args.region and len(args.region) == 1 and "=" not in args.region[0]:
        region = args.region[0]
    elif args.region:
        region = {}
        for item in args.region:
            if "=" not in item:
                raise NeurofitError(f"--region {item!r}: give one region for all units, or LOCATION=REGION pairs")
            location, value = item.split("=", 1)
            region[location] = value or None
    recording = recording_from_nwb(
        args.path, units_table=args.units, stimulus_table=args.stimulus_table, stimulus_column=args.stimulus_column,
        bin_ms=args.bin_ms, window_ms=tuple(args.window) if args.window else None, region=region,
        units="spikes/s" if args.rates else "counts",
    )
    out = args.out or args.path.with_suffix(".nc")
    write_recording(recording, out)
    sizes = recording.sizes
    print(f"{out}: {sizes['presentation']} presentations x {sizes['neuroid']} units x {sizes['time_bin']} bins "
          f"({recording.attrs['bin_ms']:g} ms); {recording.attrs['missing_trials']}")
    return 0
