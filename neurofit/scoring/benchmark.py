"""Benchmarks: one TOML file each, validated on load, and the registry of the shipped ones.

A benchmark fixes everything a score depends on besides the model: the dataset, regions, time bins,
the stimuli's visual angle, the regression (metric, splits, temporal mode), the noise ceiling and
normalisation rule, the default time mapping policy, and the held-out commitment split. The file format
(all keys are checked; unknown keys are errors so that a typo never silently changes a score)::

    id = "synthetic-ventral-it-temporal"
    version = "1"
    description = "..."

    [dataset]
    id = "synthetic-ventral"          # a data manifest id, or "synthetic-ventral"
    options = { seed = 0 }            # generator options (synthetic-ventral only)

    # or, instead of [dataset], several sessions pooled by site (before the first table):
    # datasets = ["cowley2023-v4-210325", "cowley2023-v4-210322"]   # data manifest ids

    [neural]
    regions = ["IT"]
    time_bins = { start = 0, end = 250, width = 10 }   # or bins = [[70, 170]]

    [stimuli]
    degrees = 8.0                     # visual angle of the images in the experiment
    model_degrees = 8.0               # the model's field of view (Brain-Score: 8)

    [regression]
    metric = "pls"                    # pls | ridge | rsa | cka | reverse_pls | reverse_ridge | partition
    n_components = 25
    algorithm = "exact"               # exact | nipals (sklearn's iteration, for Brain-Score numbers)
    split_scheme = "kfold"            # kfold | brainscore
    n_splits = 10
    seed = 0
    temporal_mode = "per_bin"         # per_bin | span_time
    alpha = 1.0                       # ridge only: one fixed penalty (sklearn/Brain-Score Ridge(alpha));
                                      # unset: a penalty per site chosen by leave-one-out on each fold
    train_size = 0.9                  # brainscore splits: share of stimuli trained on (the rest is tested)
    stratify = true                   # stratify the splits by object_name (false: Brain-Score's
                                      # stratification_coord=None)

    [ceiling]
    method = "split_half"             # split_half | brainscore | none (no ceiling: r only)
    n_splits = 10
    seed = 0
    normalisation = "r2_over_ceiling" # r2_over_ceiling | legacy | feve

    [mapping]
    policy = "one_to_one"             # one_to_one | table | portion | constant | graded
    offsets_ms = [0, 10, 20]          # latency offsets the commitment may choose from

    [commitment]
    fraction = 0.2                    # share of stimuli held out to choose layers; 0: no commitment split
    seed = 0
    n_splits = 3                      # K-fold over the held-out stimuli for each candidate

    [aggregate]
    method = "median"                 # median (per region and bin) | brainscore (mean over splits of medians)
    n_bootstrap = 1000
    seed = 0

    [metric]                          # settings of the metrics beyond regression (neurofit.scoring.metric)
    comparison = "spearman"           # rsa: cosine | corr | spearman | tau_a
    dissimilarity = "correlation"     # rsa: neural RDMs by correlation | crossnobis (needs complete trials)
    n_groups = 5                      # rsa: repetition groups ("subjects") of the noise ceiling
    debiased = true                   # cka: the debiased estimator (false: plain linear CKA)
    n_bootstrap = 100                 # rsa, cka, reverse_*: draws over stimuli (recomputed in each draw);
                                      # rsa: as many over each region's sites
    band_resolution = 6               # partition: band weightings on the simplex (banded ridge)

A pooled benchmark (``datasets``) scores each session on its own (its stimuli, splits and layer
commitment) and concatenates the sites; a session without trial repeats gets no ceiling (NaN).

Values are range-checked on load, so a file cannot make a run allocate without bound or score nonsense (every
error names the file and the key): time-bin edges finite and within ``MAX_TIME_MS`` of onset, at most
``MAX_BINS`` bins; latency offsets finite and no larger in magnitude than the span of the benchmark's bins (a
larger one maps no model step to any bin, or unrolls the model for nothing; the bins themselves must lie in the
recording, checked when it is prepared); cross-validation splits 2 to ``MAX_SPLITS``, ceiling halvings 1 to
``MAX_SPLITS``, bootstrap draws at most ``MAX_BOOTSTRAP``; seeds in ``[0, 2**32)`` (what numpy and sklearn
accept); regions listed once; degrees finite and > 0; time tables and generator options of the types they need.

Benchmarks are found in ``$NEUROFIT_BENCHMARKS`` (a ``:``-separated list of folders), the package's own
``neurofit/benchmarks/`` and the repository's ``benchmarks/`` folder, in that order.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurofit.errors import NeurofitError, ValidationError, did_you_mean

REGRESSION_METRICS = ("pls", "ridge")
# metrics beyond one regression score (neurofit.scoring.metric): population metrics give one value per region and
# bin, partition one per site and bin
POPULATION_METRICS = ("rsa", "cka", "reverse_pls", "reverse_ridge")
METRICS = (*REGRESSION_METRICS, *POPULATION_METRICS, "partition")
RSA_COMPARISONS = ("cosine", "corr", "spearman", "tau_a")
RSA_DISSIMILARITIES = ("correlation", "crossnobis")
ALGORITHMS = ("exact", "nipals")
SPLIT_SCHEMES = ("kfold", "brainscore")
TEMPORAL_MODES = ("per_bin", "span_time")
CEILING_METHODS = ("split_half", "brainscore", "none")
NORMALISATIONS = ("r2_over_ceiling", "legacy", "feve")
POLICIES = ("one_to_one", "table", "portion", "constant", "graded")
AGGREGATES = ("median", "brainscore")
REGIONS = ("V1", "V2", "V4", "IT")
SYNTHETIC = "synthetic-ventral"
MAX_FILE_BYTES = 2**20
MAX_BINS = 10_000
MAX_TIME_MS = 100_000.0
MAX_SPLITS = 1_000
MAX_BOOTSTRAP = 100_000
MAX_COMPONENTS = 10_000
MAX_SEED = 2**32 - 1
MAX_TABLE_STEP = 100_000
# the generator options a benchmark may set for synthetic-ventral: (types, lowest, highest)
SYNTHETIC_OPTIONS: dict[str, tuple[tuple[type, ...], int, int]] = {
    "size": ((str, int), 192, 100_000), "n_v4": ((int,), 0, 100_000), "n_it": ((int,), 0, 100_000),
    "repetitions": ((int,), 2, 1_000), "seed": ((int,), 0, MAX_SEED), "averaged": ((bool,), 0, 1),
}

_SECTIONS: dict[str, set[str]] = {
    "dataset": {"id", "options"},
    "neural": {"regions", "time_bins", "bins"},
    "stimuli": {"degrees", "model_degrees"},
    "regression": {"metric", "n_components", "algorithm", "split_scheme", "n_splits", "seed", "temporal_mode",
                   "alpha", "train_size", "stratify"},
    "ceiling": {"method", "n_splits", "seed", "normalisation"},
    "mapping": {"policy", "offsets_ms", "tables"},
    "commitment": {"fraction", "seed", "n_splits"},
    "aggregate": {"method", "n_bootstrap", "seed"},
    "metric": {"comparison", "dissimilarity", "n_groups", "debiased", "n_bootstrap", "band_resolution"},
}
_TOP = {"id", "version", "description", "citation", "datasets", *_SECTIONS}


@dataclass(frozen=True)
class RegressionSection:
    """``[regression]``: the mapping from features to responses and its cross-validation over stimuli."""

    metric: str = "pls"
    n_components: int = 25
    algorithm: str = "exact"
    split_scheme: str = "kfold"
    n_splits: int = 10
    seed: int = 0
    temporal_mode: str = "per_bin"
    alpha: float | None = None
    train_size: float = 0.9
    stratify: bool = True


# settings added after benchmarks were hashed: left out of the hash at these defaults, so that the work
# directories and ScoreSet attrs of every benchmark that does not set them stay valid
_LATER_DEFAULTS = {"ridge_alpha": None, "train_size": 0.9, "stratify": True}


@dataclass(frozen=True)
class CeilingSection:
    """``[ceiling]``: the noise ceiling and the normalisation rule of the ceiled score."""

    method: str = "split_half"
    n_splits: int = 10
    seed: int = 0
    normalisation: str = "r2_over_ceiling"


@dataclass(frozen=True)
class MappingSection:
    """``[mapping]``: the default time-mapping policy, the latency offsets tried and the step tables."""

    policy: str = "one_to_one"
    offsets_ms: tuple[float, ...] = (0.0,)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class CommitmentSection:
    """``[commitment]``: the share of stimuli held out to choose layers, its seed and its folds."""

    fraction: float = 0.2
    seed: int = 0
    n_splits: int = 3


@dataclass(frozen=True)
class AggregateSection:
    """``[aggregate]``: how sites are summarised per region and bin, and the bootstrap of that summary."""

    method: str = "median"
    n_bootstrap: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class MetricSection:
    """``[metric]``: settings of the metrics beyond regression (RSA, CKA, variance partitioning)."""

    comparison: str = "spearman"
    dissimilarity: str = "correlation"
    n_groups: int = 5
    debiased: bool = True
    n_bootstrap: int = 100
    band_resolution: int = 6


SECTIONS = {"regression": RegressionSection, "ceiling": CeilingSection, "mapping": MappingSection,
            "commitment": CommitmentSection, "aggregate": AggregateSection, "metric": MetricSection}

# the flat names every setting had before the sections (the content hash of a benchmark is over them, so
# work directories and ScoreSet attrs stay valid)
_FLAT_NAMES = {
    ("regression", "metric"): "metric", ("regression", "n_components"): "n_components",
    ("regression", "algorithm"): "algorithm", ("regression", "split_scheme"): "split_scheme",
    ("regression", "n_splits"): "n_splits", ("regression", "seed"): "split_seed",
    ("regression", "temporal_mode"): "temporal_mode", ("regression", "alpha"): "ridge_alpha",
    ("regression", "train_size"): "train_size", ("regression", "stratify"): "stratify",
    ("ceiling", "method"): "ceiling", ("ceiling", "n_splits"): "ceiling_splits", ("ceiling", "seed"): "ceiling_seed",
    ("ceiling", "normalisation"): "normalisation",
    ("mapping", "policy"): "mapping_policy", ("mapping", "offsets_ms"): "offsets_ms", ("mapping", "tables"): "tables",
    ("commitment", "fraction"): "commitment_fraction", ("commitment", "seed"): "commitment_seed",
    ("commitment", "n_splits"): "commitment_splits",
    ("aggregate", "method"): "aggregate", ("aggregate", "n_bootstrap"): "n_bootstrap",
    ("aggregate", "seed"): "bootstrap_seed",
}


@dataclass(frozen=True)
class Benchmark:
    """A validated benchmark definition (see the module docstring for the file format).

    The TOML file's sections are frozen dataclasses of their own (``regression``, ``ceiling``, ``mapping``,
    ``commitment``, ``aggregate``), so a helper receives only the section it needs.

    Example
    -------
    >>> b = load_benchmark("synthetic-ventral-it-temporal")
    >>> b.regions, len(b.time_bins), b.time_bins[0], b.regression.n_components
    (('IT',), 25, (0.0, 10.0), 25)
    >>> b.replace(aggregate={"n_bootstrap": 0}).aggregate.n_bootstrap
    0
    """

    id: str
    version: str
    dataset: str
    regions: tuple[str, ...]
    time_bins: tuple[tuple[float, float], ...]
    degrees: float
    description: str = ""
    citation: str = ""
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model_degrees: float = 8.0
    regression: RegressionSection = field(default_factory=RegressionSection)
    ceiling: CeilingSection = field(default_factory=CeilingSection)
    mapping: MappingSection = field(default_factory=MappingSection)
    commitment: CommitmentSection = field(default_factory=CommitmentSection)
    aggregate: AggregateSection = field(default_factory=AggregateSection)
    metric: MetricSection = field(default_factory=MetricSection)
    datasets: tuple[str, ...] = ()
    path: str = ""

    def replace(self, **changes: Any) -> Benchmark:
        """A copy with ``changes``: top-level fields by value, sections by a dict of their fields.

        Example
        -------
        >>> b = load_benchmark("synthetic-ventral-it-temporal").replace(regression={"n_splits": 5}, regions=("IT",))
        >>> b.regression.n_splits, b.regression.n_components
        (5, 25)
        """
        for name, value in list(changes.items()):
            if name in SECTIONS and isinstance(value, Mapping):
                changes[name] = dataclasses.replace(getattr(self, name), **value)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a plain flat dict (without the file path), under the names the hash is over."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in SECTIONS and f.name != "path"}
        for (section, name), flat in _FLAT_NAMES.items():
            out[flat] = getattr(getattr(self, section), name)
        if self.metric != MetricSection():
            # only where set: the hashes of benchmarks that never name [metric] stay what they were
            out["metric_settings"] = dataclasses.asdict(self.metric)
        return copy.deepcopy(out)

    def sha256(self) -> str:
        """Content hash of the settings (the file path and description do not count)."""
        settings = self.to_dict()
        settings.pop("description")
        if not settings["datasets"]:
            # single-dataset benchmarks hash as they did before pooling existed (work dirs and attrs stay valid)
            settings.pop("datasets")
        for name, default in _LATER_DEFAULTS.items():
            if settings[name] == default:
                settings.pop(name)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def benchmark_dirs() -> list[Path]:
    """Folders searched for ``*.toml`` benchmark files, in order of precedence."""
    dirs: list[Path] = []
    env = os.environ.get("NEUROFIT_BENCHMARKS", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    package = Path(__file__).resolve().parent.parent
    dirs += [package / "benchmarks", package.parent / "benchmarks"]
    return [d for d in dirs if d.is_dir()]


def list_benchmarks() -> dict[str, Path]:
    """Benchmark id -> file for every benchmark found (the first folder holding an id wins).

    Example
    -------
    >>> "synthetic-ventral-v4-temporal" in list_benchmarks()
    True
    """
    found: dict[str, Path] = {}
    for folder in benchmark_dirs():
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def load_benchmark(id_or_path: str | os.PathLike[str]) -> Benchmark:
    """Load and validate a benchmark by id (see :func:`list_benchmarks`) or from a TOML file path.

    Parameters
    ----------
    id_or_path : str or path
        A registered id such as ``"synthetic-ventral-it-temporal"``, or a path ending in ``.toml``.

    Returns
    -------
    Benchmark

    Raises
    ------
    NeurofitError
        Unknown id (the valid ones are listed), or a file that breaks the format (the file and key are named).

    Example
    -------
    >>> load_benchmark("synthetic-ventral-v4-temporal").regression.metric
    'pls'
    """
    if isinstance(id_or_path, Benchmark):
        return id_or_path
    text = os.fspath(id_or_path)
    path = Path(text)
    if text.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise NeurofitError(f"benchmark file not found: {path}")
    else:
        known = list_benchmarks()
        if text not in known:
            raise NeurofitError(f"unknown benchmark {text!r}{did_you_mean(text, known)}; valid benchmarks: "
                                f"{', '.join(sorted(known)) or 'none'} (neurofit benchmarks list)")
        path = known[text]
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise NeurofitError(f"cannot read benchmark file {path}: {err.strerror or err}") from err
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(f"benchmark file {path} is larger than {MAX_FILE_BYTES // 2**20} MiB: not a benchmark")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(f"benchmark file {path} is not valid TOML: {err}") from err
    return parse_benchmark(raw, source=str(path))


def _fail(source: str, key: str, message: str) -> ValidationError:
    return ValidationError(f"benchmark {source}: key {key!r} {message}")


def _get(section: Mapping[str, Any], name: str, key: str, source: str, kind: type | tuple[type, ...],
         default: Any = None, required: bool = False) -> Any:
    if name not in section:
        if required:
            raise _fail(source, key, "is required")
        return default
    value = section[name]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                                                      else (kind,)))
    if not ok:
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _fail(source, key, f"must be {names}, got {value!r}")
    return value


def _in_range(value: int | float, key: str, source: str, low: float, high: float, what: str = "") -> None:
    """A number that is finite and in ``[low, high]``, or one line naming the key."""
    if not (math.isfinite(value) and low <= value <= high):
        def show(v: float) -> str:
            return str(int(v)) if float(v).is_integer() else f"{v:g}"

        raise _fail(source, key, f"must be {what or 'a number'} in [{show(low)}, {show(high)}], got {value!r}")


def _seed(section: Mapping[str, Any], key: str, source: str, default: int) -> int:
    seed = _get(section, "seed", key, source, int, default=default)
    _in_range(seed, key, source, 0, MAX_SEED, "a seed")
    return int(seed)


def _synthetic_options(options: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Generator options of synthetic-ventral, each of its type and in its range."""
    for name, value in options.items():
        key = f"dataset.options.{name}"
        if name not in SYNTHETIC_OPTIONS:
            raise _fail(source, key, f"is not a generator option; valid options: {', '.join(SYNTHETIC_OPTIONS)}")
        kinds, low, high = SYNTHETIC_OPTIONS[name]
        _get(options, name, key, source, kinds)
        if isinstance(value, int) and not isinstance(value, bool):
            _in_range(value, key, source, low, high, "a whole number")
    return dict(options)


def _tables(tables: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Time tables ``{layer: {step: start_ms or [start_ms, end_ms]}}``, every value checked."""
    out: dict[str, dict[str, Any]] = {}
    for layer, table in tables.items():
        key = f"mapping.tables.{layer}"
        if not isinstance(table, Mapping) or not table:
            raise _fail(source, key, f"must be a non-empty table {{step = start_ms or [start_ms, end_ms]}}, "
                                     f"got {table!r}")
        for step, window in table.items():
            item = f"{key}.{step}"
            if not (isinstance(step, str) and step.isdigit() and int(step) <= MAX_TABLE_STEP):
                raise _fail(source, item, f"must be keyed by a step number 0-{MAX_TABLE_STEP}")
            values = window if isinstance(window, list) else [window]
            if (len(values) not in (1, 2) or (isinstance(window, list) and len(values) != 2)
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
                raise _fail(source, item, f"must be start_ms or [start_ms, end_ms], got {window!r}")
            for v in values:
                _in_range(v, item, source, -MAX_TIME_MS, MAX_TIME_MS, "a time in ms")
        out[str(layer)] = dict(table)
    return out


def _choice(value: str, allowed: tuple[str, ...], key: str, source: str) -> str:
    if value not in allowed:
        raise _fail(source, key, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_benchmark(raw: Mapping[str, Any], source: str = "<dict>") -> Benchmark:
    """Validate a benchmark given as a parsed TOML mapping (``source`` names it in errors).

    Example
    -------
    >>> parse_benchmark({"id": "x", "version": "1"}, source="x.toml")
    Traceback (most recent call last):
    ...
    neurofit.errors.ValidationError: benchmark x.toml: key 'dataset' is required
    """
    for key in raw:
        if key not in _TOP:
            raise _fail(source, key, f"is not a benchmark key; valid keys: {', '.join(sorted(_TOP))}")
    sections: dict[str, Mapping[str, Any]] = {}
    for name, allowed in _SECTIONS.items():
        section = raw.get(name, {})
        if not isinstance(section, Mapping):
            raise _fail(source, name, "must be a table ([section])")
        for key in section:
            if key not in allowed:
                valid = ", ".join(sorted(allowed))
                raise _fail(source, f"{name}.{key}", f"is not a key of [{name}]; valid keys: {valid}")
        sections[name] = section
    if "dataset" in raw and "datasets" in raw:
        raise _fail(source, "datasets", "and [dataset] are exclusive: name one dataset ([dataset] id) or several "
                                        "sessions to pool (datasets = [...]), not both")
    if "dataset" not in raw and "datasets" not in raw:
        raise _fail(source, "dataset", "is required")
    bid = _get(raw, "id", "id", source, str, required=True)
    version = _get(raw, "version", "version", source, (str, int), required=True)
    if Path(source).suffix == ".toml" and Path(source).stem != bid:
        raise _fail(source, "id", f"is {bid!r} but the file is named {Path(source).name}: they must agree")

    pooled: tuple[str, ...] = ()
    if "datasets" in raw:
        pooled = _pooled_datasets(raw["datasets"], source)
        dataset, options = "+".join(pooled), {}
    else:
        ds = sections["dataset"]
        dataset = _get(ds, "id", "dataset.id", source, str, required=True)
        options = dict(_get(ds, "options", "dataset.options", source, Mapping, default={}))
        if options and dataset != SYNTHETIC:
            raise _fail(source, "dataset.options", f"only applies to {SYNTHETIC!r} (generator options)")
        options = _synthetic_options(options, source)

    neural = sections["neural"]
    regions = _get(neural, "regions", "neural.regions", source, list, required=True)
    if not regions or not all(isinstance(r, str) and r in REGIONS for r in regions):
        raise _fail(source, "neural.regions", f"must be a non-empty list of {', '.join(REGIONS)}, got {regions!r}")
    twice = sorted({r for r in regions if regions.count(r) > 1})
    if twice:
        raise _fail(source, "neural.regions", f"names {twice[0]!r} twice; list each region once")
    if ("time_bins" in neural) == ("bins" in neural):
        raise _fail(source, "neural.time_bins", "or 'neural.bins' is required (exactly one of them)")
    if "time_bins" in neural:
        spec = _get(neural, "time_bins", "neural.time_bins", source, Mapping)
        for key in spec:
            if key not in ("start", "end", "width"):
                raise _fail(source, f"neural.time_bins.{key}", "is not one of start, end, width")
        start, end, width = (float(_get(spec, k, f"neural.time_bins.{k}", source, (int, float), required=True))
                             for k in ("start", "end", "width"))
        for k, v in (("start", start), ("end", end)):
            _in_range(v, f"neural.time_bins.{k}", source, -MAX_TIME_MS, MAX_TIME_MS, "a time in ms")
        _in_range(width, "neural.time_bins.width", source, 0, 2 * MAX_TIME_MS, "a width in ms")
        n = (end - start) / width if width > 0 else -1
        if n > MAX_BINS:
            raise _fail(source, "neural.time_bins", f"gives {n:.6g} bins ({start:g}-{end:g} ms in {width:g} ms bins); "
                                                   f"at most {MAX_BINS} are allowed")
        if width <= 0 or n < 1 or abs(n - round(n)) > 1e-9:
            raise _fail(source, "neural.time_bins", f"must span a whole number of bins: {start:g}-{end:g} ms in "
                                                   f"{width:g} ms bins")
        bins = tuple((start + i * width, start + (i + 1) * width) for i in range(round(n)))
    else:
        listed = _get(neural, "bins", "neural.bins", source, list)
        if len(listed) > MAX_BINS:
            raise _fail(source, "neural.bins", f"lists {len(listed)} bins; at most {MAX_BINS} are allowed")
        bins_list = []
        for i, pair in enumerate(listed):
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
                    or not pair[1] > pair[0]):
                raise _fail(source, f"neural.bins[{i}]", f"must be [start_ms, end_ms] with end > start, got {pair!r}")
            for v in pair:
                _in_range(v, f"neural.bins[{i}]", source, -MAX_TIME_MS, MAX_TIME_MS, "a time in ms")
            if bins_list and pair[0] < bins_list[-1][1]:
                raise _fail(source, f"neural.bins[{i}]", "must start after the previous bin ends")
            bins_list.append((float(pair[0]), float(pair[1])))
        if not bins_list:
            raise _fail(source, "neural.bins", "must list at least one bin")
        bins = tuple(bins_list)

    stim = sections["stimuli"]
    degrees = float(_get(stim, "degrees", "stimuli.degrees", source, (int, float), required=True))
    model_degrees = float(_get(stim, "model_degrees", "stimuli.model_degrees", source, (int, float), default=8.0))
    for key, value in (("stimuli.degrees", degrees), ("stimuli.model_degrees", model_degrees)):
        if not (math.isfinite(value) and value > 0):
            raise _fail(source, key, f"must be a finite number > 0, got {value!r}")

    reg = sections["regression"]
    metric = _choice(_get(reg, "metric", "regression.metric", source, str, default="pls"), METRICS,
                     "regression.metric", source)
    n_components = _get(reg, "n_components", "regression.n_components", source, int, default=25)
    _in_range(n_components, "regression.n_components", source, 1, MAX_COMPONENTS, "a whole number")
    algorithm = _choice(_get(reg, "algorithm", "regression.algorithm", source, str, default="exact"), ALGORITHMS,
                        "regression.algorithm", source)
    scheme = _choice(_get(reg, "split_scheme", "regression.split_scheme", source, str, default="kfold"),
                     SPLIT_SCHEMES, "regression.split_scheme", source)
    n_splits = _get(reg, "n_splits", "regression.n_splits", source, int, default=10)
    _in_range(n_splits, "regression.n_splits", source, 2, MAX_SPLITS, "a whole number")
    split_seed = _seed(reg, "regression.seed", source, default=1 if scheme == "brainscore" else 0)
    mode = _choice(_get(reg, "temporal_mode", "regression.temporal_mode", source, str, default="per_bin"),
                   TEMPORAL_MODES, "regression.temporal_mode", source)
    alpha = _get(reg, "alpha", "regression.alpha", source, (int, float), default=None)
    if alpha is not None:
        if metric != "ridge":
            raise _fail(source, "regression.alpha", f"is a ridge penalty, but regression.metric is {metric!r}")
        alpha = float(alpha)
        if not (math.isfinite(alpha) and 0 < alpha <= 1e12):
            raise _fail(source, "regression.alpha", f"must be a finite penalty in (0, 1e12], got {alpha!r}")
    train_size = float(_get(reg, "train_size", "regression.train_size", source, (int, float), default=0.9))
    if "train_size" in reg and scheme != "brainscore":
        raise _fail(source, "regression.train_size", "applies to split_scheme = 'brainscore' (K-fold tests every "
                                                     "stimulus once: its training share is 1 - 1/n_splits)")
    if not 0.0 < train_size < 1.0:
        raise _fail(source, "regression.train_size", f"must be in (0, 1), got {train_size!r}")
    stratify = _get(reg, "stratify", "regression.stratify", source, bool, default=True)

    ceil = sections["ceiling"]
    method = _choice(_get(ceil, "method", "ceiling.method", source, str, default="split_half"), CEILING_METHODS,
                     "ceiling.method", source)
    ceiling_splits = _get(ceil, "n_splits", "ceiling.n_splits", source, int, default=10)
    _in_range(ceiling_splits, "ceiling.n_splits", source, 1, MAX_SPLITS, "a whole number")
    ceiling_seed = _seed(ceil, "ceiling.seed", source, default=1 if method == "brainscore" else 0)
    normalisation = _choice(_get(ceil, "normalisation", "ceiling.normalisation", source, str,
                                 default="r2_over_ceiling"), NORMALISATIONS, "ceiling.normalisation", source)
    if method == "none" and normalisation == "feve":
        raise _fail(source, "ceiling.normalisation", "'feve' needs trial repeats, but ceiling.method is 'none'")

    mapping = sections["mapping"]
    policy = _choice(_get(mapping, "policy", "mapping.policy", source, str, default="one_to_one"), POLICIES,
                     "mapping.policy", source)
    offsets = _get(mapping, "offsets_ms", "mapping.offsets_ms", source, list, default=[0])
    if not offsets or not all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in offsets):
        raise _fail(source, "mapping.offsets_ms", f"must be a non-empty list of numbers, got {offsets!r}")
    if len(offsets) > MAX_BINS:
        raise _fail(source, "mapping.offsets_ms", f"lists {len(offsets)} offsets; at most {MAX_BINS} are allowed")
    span = bins[-1][1] - bins[0][0]
    for i, offset in enumerate(offsets):
        if not (math.isfinite(offset) and abs(offset) <= span):
            raise _fail(source, f"mapping.offsets_ms[{i}]",
                        f"is {offset!r} ms; a latency offset must be finite and within +-{span:g} ms, the span of the "
                        f"benchmark's time bins ({bins[0][0]:g}-{bins[-1][1]:g} ms): a larger one maps no model step "
                        "to any bin, or unrolls the model for nothing")
    tables = _tables(_get(mapping, "tables", "mapping.tables", source, Mapping, default={}), source)
    if policy == "table" and not tables:
        raise _fail(source, "mapping.tables", "is required by the table policy ({layer: {step: [start, end]}})")

    commit = sections["commitment"]
    fraction = float(_get(commit, "fraction", "commitment.fraction", source, (int, float), default=0.2))
    if not 0.0 <= fraction < 1.0:
        raise _fail(source, "commitment.fraction", f"must be in [0, 1), got {fraction}")
    commitment_seed = _seed(commit, "commitment.seed", source, default=0)
    commitment_splits = _get(commit, "n_splits", "commitment.n_splits", source, int, default=3)
    _in_range(commitment_splits, "commitment.n_splits", source, 2, MAX_SPLITS, "a whole number")

    agg = sections["aggregate"]
    aggregate = _choice(_get(agg, "method", "aggregate.method", source, str, default="median"), AGGREGATES,
                        "aggregate.method", source)
    n_bootstrap = _get(agg, "n_bootstrap", "aggregate.n_bootstrap", source, int, default=1000)
    _in_range(n_bootstrap, "aggregate.n_bootstrap", source, 0, MAX_BOOTSTRAP, "a whole number")
    bootstrap_seed = _seed(agg, "aggregate.seed", source, default=0)
    if method == "none" and aggregate == "brainscore":
        raise _fail(source, "aggregate.method", "'brainscore' needs a ceiling, but ceiling.method is 'none'")
    metric_section = _metric_section(sections["metric"], source)

    return Benchmark(
        id=bid, version=str(version), description=str(raw.get("description", "")),
        citation=str(raw.get("citation", "")), dataset=dataset, dataset_options=options,
        regions=tuple(regions), time_bins=bins, degrees=degrees, model_degrees=model_degrees,
        regression=RegressionSection(metric=metric, n_components=int(n_components), algorithm=algorithm,
                                     split_scheme=scheme, n_splits=int(n_splits), seed=int(split_seed),
                                     temporal_mode=mode, alpha=alpha, train_size=train_size,
                                     stratify=bool(stratify)),
        ceiling=CeilingSection(method=method, n_splits=int(ceiling_splits), seed=int(ceiling_seed),
                               normalisation=normalisation),
        mapping=MappingSection(policy=policy, offsets_ms=tuple(float(o) for o in offsets), tables=tables),
        commitment=CommitmentSection(fraction=fraction, seed=int(commitment_seed), n_splits=int(commitment_splits)),
        aggregate=AggregateSection(method=aggregate, n_bootstrap=int(n_bootstrap), seed=int(bootstrap_seed)),
        metric=metric_section,
        datasets=pooled,
        path=str(Path(source).resolve()) if Path(source).exists() else source,
    )


def _metric_section(section: Mapping[str, Any], source: str) -> MetricSection:
    """``[metric]``, every value of its type and in its range."""
    default = MetricSection()
    comparison = _choice(_get(section, "comparison", "metric.comparison", source, str, default=default.comparison),
                         RSA_COMPARISONS, "metric.comparison", source)
    dissimilarity = _choice(_get(section, "dissimilarity", "metric.dissimilarity", source, str,
                                 default=default.dissimilarity), RSA_DISSIMILARITIES, "metric.dissimilarity", source)
    n_groups = _get(section, "n_groups", "metric.n_groups", source, int, default=default.n_groups)
    _in_range(n_groups, "metric.n_groups", source, 2, MAX_SPLITS, "a whole number")
    debiased = _get(section, "debiased", "metric.debiased", source, bool, default=default.debiased)
    n_bootstrap = _get(section, "n_bootstrap", "metric.n_bootstrap", source, int, default=default.n_bootstrap)
    _in_range(n_bootstrap, "metric.n_bootstrap", source, 0, MAX_BOOTSTRAP, "a whole number")
    resolution = _get(section, "band_resolution", "metric.band_resolution", source, int,
                      default=default.band_resolution)
    _in_range(resolution, "metric.band_resolution", source, 2, 100, "a whole number")
    return MetricSection(comparison=comparison, dissimilarity=dissimilarity, n_groups=int(n_groups),
                         debiased=bool(debiased), n_bootstrap=int(n_bootstrap), band_resolution=int(resolution))


def _pooled_datasets(value: Any, source: str) -> tuple[str, ...]:
    """The session ids of a pooled benchmark: distinct data manifest ids (an unknown one lists the valid ones)."""
    from neurofit.data.manifest import list_manifests

    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(source, "datasets", f"must be a non-empty list of data manifest ids, got {value!r}")
    duplicates = sorted({v for v in value if value.count(v) > 1})
    if duplicates:
        raise _fail(source, "datasets", f"names {duplicates[0]!r} twice; list each session once")
    known = set(list_manifests())
    for item in value:
        if item not in known:
            raise _fail(source, "datasets", f"names {item!r}, which is not a data manifest id; valid ids: "
                                            f"{', '.join(sorted(known)) or 'none'}")
    return tuple(value)
