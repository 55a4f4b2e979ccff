"""The pipeline's stages, declared once, in the order `curate run` runs them.

A `StageSpec` says what a stage is: the function that runs it, the check of its settings, the
workspace entries it requires, uses where they exist and writes, and its command options. The
pipeline order, `curate run`, the single-stage commands (`curate.cli.stage_commands`), the flows,
`curate status` and the "missing input" messages all derive from this registry.

Functions are named by "module:function" references and imported only when a stage runs, so a
command pays only for the stages it uses (pandas, torch, FiftyOne and matplotlib are heavy).
A stage's function is `run(src, out, cfg) -> summary`, where the summary is a dataclass with a
`view(out) -> curate.view.View` method. Importing this module does no work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from curate.registry import Registry

# Workspace entries (folders of Parquet parts, or files) by name, as `curate.workspace.Workspace` names them.
MANIFEST, EMBEDDINGS, ISSUES, DUPLICATES, DEDUP_PAIRS = "manifest", "embeddings", "issues", "duplicates", "dedup_pairs"
PLAN = "plan"
SHARDS, AUGMENTED, INDEX, DATASET = "shards", "augmented", "index.parquet", "dataset.json"
PUBLISHED, REPORT = "publish", "report"


def shown(entry: str) -> str:
    """How messages name a workspace entry: folders with a trailing slash."""
    return entry if "." in entry else f"{entry}/"


def comma_list(text: str) -> list[str]:
    """'cat, dog' -> ['cat', 'dog']."""
    return [c.strip() for c in text.split(",") if c.strip()]


@dataclass(frozen=True)
class Option:
    """A command-line option of a stage command (declared without click).

    `flags` is click's declaration ("--threshold", or "--dihedral/--no-dihedral" for a boolean
    pair). `key` ("section.key") is the config value it overrides: its help, type, allowed values
    and default come from that config field (`curate.config.setting`), and `names` ("module:NAME"
    of a `Registry`) gives the allowed names where a registry keeps them. `help`, `type` and
    `choices` are for an option without a key, which is passed to the stage's `verdict` instead,
    or to say something the field's help does not (the same key in another command). Not given =
    the config's value."""

    flags: str
    key: str | None = None
    help: str = ""
    type: type | None = None
    choices: tuple[str, ...] = ()
    names: str | None = None
    convert: Callable[[str], Any] | None = None
    metavar: str | None = None


WORKERS = Option("--workers", "engine.workers")
SCHEDULER = Option("--scheduler", "engine.scheduler")
DASK = (WORKERS, SCHEDULER)


@dataclass(frozen=True)
class Listing:
    """An eager flag that prints reference lines and exits (e.g. `curate augment --list-ops`)."""

    flag: str
    help: str
    lines: str  # "module:function() -> list[str]"


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline (see module doc)."""

    name: str
    help: str  # one line: what it does and what it writes
    run: str  # "module:function(src, out, cfg) -> summary"
    check: str | None = None  # "module:function(cfg)": reject bad settings before any work
    sections: tuple[str, ...] = ()  # config sections whose settings decide what it writes (engine, run, storage:
    #                                  only how it runs); the lineage digest covers these, so another
    #                                  section's setting leaves it current
    requires: tuple[str, ...] = ()  # workspace entries it reads; without them it stops and names the command
    uses: tuple[str, ...] = ()  # workspace entries it reads where they exist
    writes: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()  # besides --config, which every stage command takes
    takes_source: bool = False  # its command reads SRC (`curate scan SRC -o OUT`); others take OUT
    verdict: str | None = None  # "module:function(summary, **keyless options) -> failure message or None"
    listing: Listing | None = None
    always_runs: bool = False  # reads or writes outside OUT, so OUT's records cannot prove it current
    default: bool = True  # in `curate run` when `[run] stages` is empty (else only when a setting needs it)
    requires_if: tuple[tuple[str, Any, str], ...] = ()  # (config key, value, entry): also required then

    def required(self, cfg: Any) -> tuple[str, ...]:
        """The entries it requires under `cfg`'s settings."""
        extra = tuple(entry for key, value, entry in self.requires_if
                      if getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1]) == value)
        return (*self.requires, *extra)

    def command(self, out: str) -> str:
        """The command that runs this stage on OUT."""
        return f"curate {self.name} SRC -o {out}" if self.takes_source else f"curate {self.name} {out}"


STAGES: Registry[StageSpec] = Registry("stage")


def stage(spec: StageSpec) -> StageSpec:
    return STAGES.add(spec.name, spec)


stage(StageSpec(
    "scan", "Scan SRC once: one manifest row per file, with hashes, facts and errors.", "curate.scan:scan",
    sections=("scan",), uses=(MANIFEST,), writes=(MANIFEST,), takes_source=True, always_runs=True, options=(
        Option("--labels", "scan.labels"), *DASK)))

stage(StageSpec(
    "embed", "Embed every ok image with an image model (offline weights); writes OUT/embeddings/.",
    "curate.embed.stage:embed", check="curate.embed.stage:resolve", sections=("embed", "scan"),
    requires=(MANIFEST,), uses=(EMBEDDINGS,),
    writes=(EMBEDDINGS,), default=False, options=(
        Option("--model", "embed.model"), Option("--device", "embed.device"), Option("--batch", "embed.batch_size"),
        Option("--precision", "embed.precision"), Option("--runtime", "embed.runtime"), *DASK)))

stage(StageSpec(
    "validate", "Check OUT's manifest: integrity, image quality and labels; writes OUT/issues/.",
    "curate.validate.stage:validate", check="curate.validate.stage:resolve", sections=("validate",),
    requires=(MANIFEST,),
    uses=(EMBEDDINGS,), writes=(ISSUES,),
    verdict="curate.validate.stage:fail_verdict", options=(
        Option("--fail-on", help="exit 1 when issues of this severity (or worse) exist", choices=("error", "warning")),
        Option("--classes", "validate.classes"), *DASK)))

stage(StageSpec(
    "dedup", "Find exact and near-duplicate clusters, leaks and label conflicts; writes OUT/duplicates/.",
    "curate.dedup.stage:dedup", check="curate.dedup.stage:resolve", sections=("dedup",), requires=(MANIFEST,),
    uses=(EMBEDDINGS, DEDUP_PAIRS), requires_if=(("dedup.semantic", True, EMBEDDINGS),),
    writes=(DUPLICATES, DEDUP_PAIRS), options=(
        Option("--threshold", "dedup.threshold"), Option("--dihedral/--no-dihedral", "dedup.dihedral"),
        Option("--semantic/--no-semantic", "dedup.semantic"), Option("--similarity", "dedup.similarity"),
        Option("--conflicts", "dedup.conflicts"))))

stage(StageSpec(
    "rebalance", "Plan the final membership: splits, class balance, copies and class weights; writes OUT/plan/.",
    "curate.rebalance.stage:rebalance", check="curate.rebalance.stage:resolve",
    sections=("rebalance", "validate"), requires=(MANIFEST,),
    uses=(EMBEDDINGS, ISSUES, DUPLICATES), requires_if=(("rebalance.prefer", "diverse", EMBEDDINGS),),
    writes=(PLAN,), options=(
        Option("--strategy", "rebalance.strategy", names="curate.rebalance.strategies:STRATEGIES"),
        Option("--cap", "rebalance.cap"), Option("--floor", "rebalance.floor"), Option("--target", "rebalance.target"),
        Option("--oversample", "rebalance.oversample"), Option("--split", "rebalance.split"),
        Option("--keep-test/--no-keep-test", "rebalance.keep_test"), Option("--prefer", "rebalance.prefer"),
        Option("--seed", "rebalance.seed"), *DASK)))

stage(StageSpec(
    "shard", "Write the plan into Parquet shards, OUT/index.parquet and OUT/dataset.json.",
    "curate.shards.stage:shard", check="curate.shards.stage:resolve", sections=("shard", "rebalance"),
    requires=(PLAN, MANIFEST),
    writes=(SHARDS, INDEX, DATASET), options=(
        Option("--shard-size", "shard.shard_size"), Option("--min-shards", "shard.min_shards"),
        Option("--normalize/--no-normalize", "shard.normalize"), Option("--max-side", "shard.max_side"), *DASK)))

stage(StageSpec(
    "augment", "Write augmented variants (Kornia) of the plan's images into OUT/augmented/<split>/ and the index.",
    "curate.augment.stage:augment", check="curate.augment.settings:resolve",
    sections=("augment", "scan", "shard", "rebalance"), requires=(PLAN, MANIFEST),
    uses=(SHARDS,), writes=(AUGMENTED, INDEX, DATASET),
    listing=Listing("--list-ops", "list the ops [augment] ops can name, with their parameters, and exit",
                    "curate.augment.ops:describe_ops"), options=(
        Option("--copies", "augment.copies"),
        Option("--classes", "augment.classes", type=str, convert=comma_list,
               help="with --copies: comma-separated classes, e.g. cat,dog (default: all)"),
        Option("--seed", "augment.seed"), Option("--device", "augment.device"),
        Option("--batch-size", "augment.batch_size"),
        Option("--workers", "engine.workers", help="processes that decode and prepare batches (0 = one per core but "
                                                   "one)"))))

stage(StageSpec(
    "publish", "Put OUT into a FiftyOne dataset: the images that need eyes (or --all), saved views for every "
               "decision.",
    "curate.publish.stage:publish", check="curate.publish.stage:resolve", sections=("publish",),
    requires=(MANIFEST,),
    uses=(EMBEDDINGS, ISSUES, DUPLICATES, PLAN, INDEX), writes=(PUBLISHED,), always_runs=True, options=(
        Option("--name", "publish.name"), Option("--batch-size", "publish.batch_size"),
        Option("--per-class-sample", "publish.per_class_sample"), Option("--all/--no-all", "publish.all"))))

stage(StageSpec(
    "report", "Write OUT/report/index.html: class counts before/after, issues, duplicates, leaks, weights.",
    "curate.report.stage:report", sections=("rebalance",), requires=(MANIFEST,), uses=(ISSUES, DUPLICATES, PLAN),
    writes=(REPORT, DATASET)))


def workspace_table() -> str:
    """ARCHITECTURE.md's workspace table, from the registry: per stage, in pipeline order, what it
    requires, uses where present and writes, and the config sections it reads (`tests/test_stages.py`
    checks that the document holds this text; print it to update the document)."""
    rows = ["| stage | requires | uses where present | writes | settings from |", "|---|---|---|---|---|"]
    for spec in STAGES:
        requires = ("SRC",) * spec.takes_source + spec.requires
        rows.append(f"| {spec.name} | {', '.join(requires)} | {', '.join(spec.uses)} | {', '.join(spec.writes)} | "
                    f"{', '.join(f'[{section}]' for section in spec.sections)} |")
    return "\n".join(rows)


def producer(entry: str) -> StageSpec:
    """The first stage that writes `entry`."""
    return next(spec for spec in STAGES if entry in spec.writes)
