"""Settings for omnifuse, read from the environment in one place.

Every value has a documented default except secrets, which raise when missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from omnifuse import landing_zone

#: Airflow connection id that, when defined, points the pipeline at an external warehouse.
WAREHOUSE_CONN_ID = "omnifuse_warehouse"


@dataclass(frozen=True)
class RerankConfig:
    """The re-ranker's sizes (:mod:`omnifuse.reranker`): EASE candidates re-ranked per customer, products its
    scorers cover (the most bought), labelled customers per training fold (sampled with the seed)."""

    candidates: int = 100
    max_items: int = 4000
    fold_customers: int = 2000


@dataclass(frozen=True)
class TrainingSettings:
    """Retraining settings beyond :class:`Settings` (build with :func:`load_training_settings`).

    - ``OMNIFUSE_TUNING_TRIALS``: hyper-parameter settings tried per base model, its defaults first (default 6:
      every setting of every grid; 1 keeps every model's defaults). A count, never seconds: the same data and
      seed give the same choice whatever the machine's load; settings beyond it are recorded as
      ``skipped_budget`` in ``ml.tuning_trials``. Wall time is capped by ``OMNIFUSE_TASK_TIMEOUT_S``, which
      fails the task rather than changing its result.
    - ``OMNIFUSE_EVAL_CUSTOMERS``: labelled customers (with a purchase) the holdout and the validation slice
      each grow to reach, day by day from ``OMNIFUSE_HOLDOUT_DAYS`` / ``OMNIFUSE_VALID_DAYS`` (default 500).
    - ``OMNIFUSE_HOLDOUT_MAX_DAYS`` / ``OMNIFUSE_VALID_MAX_DAYS``: their upper bounds (default 14 each).
    - ``OMNIFUSE_FORCE_CHAMPION``: ``1`` lets a retrain of an older business date replace a newer champion
      (default 0; a manual run can pass ``{"force": true}`` instead).
    - ``OMNIFUSE_FUSION_CANDIDATES``: products each base model proposes per customer for fusion to rank (its
      top-N; default 50). A property of the trained model: a published model keeps the count it was trained with.
    - ``OMNIFUSE_RERANK_CANDIDATES``: EASE's top-N products the ``rerank`` fusion variant re-ranks per customer
      (default 100); ``OMNIFUSE_RERANK_MAX_ITEMS``: the most bought products its scorers cover (default 4000;
      each scorer is a dense square matrix of that size, so this bounds its memory and time on large catalogs).
    """

    tuning_trials: int
    eval_customers: int
    holdout_max_days: int
    valid_max_days: int
    force_champion: bool
    fusion_candidates: int = 50
    rerank: RerankConfig = field(default_factory=RerankConfig)


def load_training_settings() -> TrainingSettings:
    """Read :class:`TrainingSettings` from the environment."""
    return TrainingSettings(
        tuning_trials=_positive_int("OMNIFUSE_TUNING_TRIALS", 6),
        eval_customers=int(os.environ.get("OMNIFUSE_EVAL_CUSTOMERS", "500")),
        holdout_max_days=int(os.environ.get("OMNIFUSE_HOLDOUT_MAX_DAYS", "14")),
        valid_max_days=int(os.environ.get("OMNIFUSE_VALID_MAX_DAYS", "14")),
        force_champion=os.environ.get("OMNIFUSE_FORCE_CHAMPION", "0").lower() in ("1", "true", "yes"),
        fusion_candidates=_positive_int("OMNIFUSE_FUSION_CANDIDATES", TrainingSettings.fusion_candidates),
        rerank=RerankConfig(candidates=_positive_int("OMNIFUSE_RERANK_CANDIDATES", RerankConfig.candidates),
                            max_items=_positive_int("OMNIFUSE_RERANK_MAX_ITEMS", RerankConfig.max_items)),
    )


def project_root() -> Path:
    """The repository root: ``OMNIFUSE_HOME`` or the folder holding ``dags/``."""
    env = os.environ.get("OMNIFUSE_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "dags").is_dir() and (parent / "include").is_dir():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`."""

    home: Path
    state_dir: Path
    landing_dir: Path | str  # a local folder, or the URL of object storage (see omnifuse.landing_zone)
    warehouse_url: str | None
    late_window_days: int
    sensor_timeout_s: int
    sensor_poke_s: int
    reattribution_days: int
    identity_max_crm_links: int
    model_store: Path
    train_days: int
    holdout_days: int
    valid_days: int
    gate_margin: float
    seed: int
    mart_retention_days: int
    max_quantity: int = 10_000
    price_outlier_factor: float = 100.0
    max_price_eur: float = 100_000.0
    non_product_skus: str = (r"^(POST|POSTAGE|DOT|M|D|S|B|C2|CRUK|PADS|BANK CHARGES|AMAZONFEE|ADJUST.*|FEE.*"
                             r"|SHIPPING.*)$")
    default_currency: str = "EUR"
    mapping_dir: Path | None = None
    data_docs: str = "always"
    max_quarantine_share: float = 0.5
    max_per_category: int = 4
    store_boost: float = 0.3
    recommend_repeats: bool = False
    ingest_block_mb: float = 1.0
    ingest_max_line_kb: int = 1024
    bi_role: str = "omnifuse_bi"
    bi_password: str | None = field(default=None, repr=False)
    alert_notifier: str | None = None
    alert_notifier_kwargs: str = "{}"
    demo_verbose: bool = False
    landing_conn_id: str | None = None
    top_k: int = 20
    scoring_batch_size: int = 5000
    segments: int = 5

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _positive_int(name: str, default: int) -> int:
    """``name`` from the environment as a whole number of at least 1 (``default`` when unset or empty)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{name}={value!r} is not a positive whole number; set it to 1 or more, or unset it for "
                         f"the default {default}")
    return number


def _megabytes(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number of megabytes (e.g. 8)") from None


def load_settings() -> Settings:
    """Read settings from the environment.

    - ``OMNIFUSE_HOME``: project root (default: the checkout holding ``dags/``).
    - ``OMNIFUSE_STATE_DIR``: embedded Postgres data, Airflow home (default ``$OMNIFUSE_HOME/.omnifuse``).
    - ``OMNIFUSE_LANDING_DIR``: landing zone root (default ``$OMNIFUSE_STATE_DIR/landing``): a local folder (a plain
      path or ``file:///…``, kept as a ``Path``) or a URL of object storage that Airflow's ``ObjectStoragePath``
      reads (``s3://bucket/prefix``, ``gs://…``, ``abfs://…``, kept as text), optionally naming its Airflow
      connection (``s3://aws_landing@bucket/prefix``). See ``omnifuse.landing_zone``.
    - ``OMNIFUSE_LANDING_CONN_ID``: the Airflow connection of a landing URL that names none (default unset: the
      filesystem's own default credentials).
    - ``OMNIFUSE_WAREHOUSE_URL``: external Postgres URL; unset means the embedded server.
    - ``OMNIFUSE_LATE_WINDOW_DAYS``: how many days late an event may arrive and still be staged (default 3).
    - ``OMNIFUSE_SENSOR_TIMEOUT_S`` / ``OMNIFUSE_SENSOR_POKE_S``: landing-file sensor timeout and
      poke interval (defaults 6 h and 5 min).
    - ``OMNIFUSE_REATTRIBUTION_DAYS``: how many event days before the business date each run rebuilds in
      ``core.interactions``, so that identities learnt today re-attribute recent anonymous events (default 7;
      never less than the late window).
    - ``OMNIFUSE_IDENTITY_MAX_CRM_LINKS``: a CRM identifier (email, phone, card, handle) on more CRM ids than
      this is treated as over-linked and merges nothing (default 3).
    - ``OMNIFUSE_MODEL_STORE``: where model artifacts are versioned (default ``$OMNIFUSE_STATE_DIR/models``).
    - ``OMNIFUSE_TRAIN_DAYS``: days of interactions a retrain reads (default 90).
    - ``OMNIFUSE_HOLDOUT_DAYS`` / ``OMNIFUSE_VALID_DAYS``: the evaluation holdout (the last days up to the
      business date) and the fusion validation slice just before it (defaults 1 and 1).
    - ``OMNIFUSE_GATE_MARGIN``: relative NDCG@10 margin by which a challenger must beat the champion and the
      popularity baseline to be promoted (default 0.01 = 1 %).
    - ``OMNIFUSE_SEED``: seed of every model (default 7): same data + same seed gives the same metrics.
    - ``OMNIFUSE_MART_RETENTION_DAYS``: days of ``mart.*_history`` partitions kept (default 30).
    - ``OMNIFUSE_MAX_QUANTITY``: a line whose absolute quantity exceeds this is quarantined as
      ``invalid_quantity`` (default 10,000: wholesale lines of hundreds are normal, 80,995 is not).
    - ``OMNIFUSE_PRICE_OUTLIER_FACTOR``: a till or web price above this many times the catalog price (both in
      EUR) is ``invalid_price`` (default 100: real catalogs hold one price while tills sell at many; the absurd
      prices it is for are x1000 typos).
    - ``OMNIFUSE_MAX_PRICE_EUR``: the highest catalog price accepted, in EUR (default 100,000).
    - ``OMNIFUSE_NON_PRODUCT_SKUS``: a case-insensitive regular expression of till SKUs that are not products
      (postage, fees, bank charges, manual adjustments): staged as ``line_kind = 'non_product'``, never an
      interaction, never checked against the catalog (default: ``POST``, ``DOT``, ``M``, ``D``, ``S``, ``B``,
      ``C2``, ``CRUK``, ``PADS``, ``BANK CHARGES``, ``AMAZONFEE``, ``ADJUST…``, ``FEE…``, ``SHIPPING…``).
    - ``OMNIFUSE_MAPPING_DIR``: where per-source column mappings (``<source>.toml``) live (default
      ``$OMNIFUSE_LANDING_DIR/_mappings``; see ``docs/landing.md``).
    - ``OMNIFUSE_MAX_QUARANTINE_SHARE``: the staging gate blocks a channel-day when more than this share of its
      lines was quarantined (default 0.5: a broken export, not a few bad rows).
    - ``OMNIFUSE_MAX_PER_CATEGORY`` / ``OMNIFUSE_STORE_BOOST``: the business rules of a newly trained model: at
      most this many products of one category in a customer's list (default 4), and the boost of products the
      stores carry, in proportion to the customer's store share (default 0.3).
    - ``OMNIFUSE_RECOMMEND_REPEATS``: ``0`` (default) publishes products the customer has not bought; ``1`` lets
      a list hold products the customer already bought when customers buy them again (learnt repeat rates). On
      Online Retail II, repeats took 18 % of the slots and the published NDCG@20 on new purchases was 0.113
      with them, 0.155 without.
    - ``OMNIFUSE_DATA_DOCS``: when the quality gates build Great Expectations Data Docs: ``always`` (default),
      ``on_failure`` (what ``omnifuse backfill`` uses: a year of history renders only the days that need a look)
      or ``never``.
    - ``OMNIFUSE_DEFAULT_CURRENCY``: the currency of catalog lines that name none (default EUR).
    - ``OMNIFUSE_INGEST_BLOCK_MB``: megabytes of a landed file read (and, for gzip, decompressed) per step (default
      1, at least 1/16). A load's peak memory grows with it (about 30×), never with the size of the files.
    - ``OMNIFUSE_INGEST_MAX_LINE_KB``: the longest landed line (or CSV record) read as data, in KiB (default 1024,
      at least 1). A longer line is quarantined ``line_too_long`` with its first KiBs; memory never holds more of it.
    - ``OMNIFUSE_BI_ROLE`` / ``OMNIFUSE_BI_PASSWORD``: the read-only BI role (see ``warehouse.bi_credentials``).
    - ``OMNIFUSE_ALERT_NOTIFIER`` / ``OMNIFUSE_ALERT_NOTIFIER_KWARGS``: ``module:Class`` of an Airflow notifier
      called on a task failure, and its keyword arguments as JSON (see ``alerts.configured_notifier``).
    - ``OMNIFUSE_DEMO_VERBOSE``: ``1`` shows the libraries' output during ``make demo`` (default: to its log).
    - ``OMNIFUSE_TOP_K``: length of each customer's published recommendation list (default 20).
    - ``OMNIFUSE_SCORING_BATCH_SIZE``: customers per scoring batch of a publish run, one mapped task each
      (default 5,000).
    - ``OMNIFUSE_SEGMENTS``: customer segments (k-means clusters) in ``mart.customer_segments`` (default 5).
    """
    home = project_root()
    state = Path(os.environ.get("OMNIFUSE_STATE_DIR", home / ".omnifuse")).resolve()
    landing = landing_zone.parse_setting(os.environ.get("OMNIFUSE_LANDING_DIR") or str(state / "landing"))
    return Settings(
        home=home,
        state_dir=state,
        landing_dir=landing,
        warehouse_url=os.environ.get("OMNIFUSE_WAREHOUSE_URL") or None,
        late_window_days=int(os.environ.get("OMNIFUSE_LATE_WINDOW_DAYS", "3")),
        sensor_timeout_s=int(os.environ.get("OMNIFUSE_SENSOR_TIMEOUT_S", str(6 * 3600))),
        sensor_poke_s=int(os.environ.get("OMNIFUSE_SENSOR_POKE_S", "300")),
        reattribution_days=int(os.environ.get("OMNIFUSE_REATTRIBUTION_DAYS", "7")),
        identity_max_crm_links=int(os.environ.get("OMNIFUSE_IDENTITY_MAX_CRM_LINKS", "3")),
        model_store=Path(os.environ.get("OMNIFUSE_MODEL_STORE", state / "models")).resolve(),
        train_days=int(os.environ.get("OMNIFUSE_TRAIN_DAYS", "90")),
        holdout_days=int(os.environ.get("OMNIFUSE_HOLDOUT_DAYS", "1")),
        valid_days=int(os.environ.get("OMNIFUSE_VALID_DAYS", "1")),
        gate_margin=float(os.environ.get("OMNIFUSE_GATE_MARGIN", "0.01")),
        seed=int(os.environ.get("OMNIFUSE_SEED", "7")),
        mart_retention_days=int(os.environ.get("OMNIFUSE_MART_RETENTION_DAYS", "30")),
        max_quantity=int(os.environ.get("OMNIFUSE_MAX_QUANTITY", "10000")),
        price_outlier_factor=float(os.environ.get("OMNIFUSE_PRICE_OUTLIER_FACTOR", "100")),
        max_price_eur=float(os.environ.get("OMNIFUSE_MAX_PRICE_EUR", "100000")),
        non_product_skus=os.environ.get("OMNIFUSE_NON_PRODUCT_SKUS", Settings.non_product_skus),
        default_currency=os.environ.get("OMNIFUSE_DEFAULT_CURRENCY", "EUR").upper(),
        max_quarantine_share=float(os.environ.get("OMNIFUSE_MAX_QUARANTINE_SHARE", "0.5")),
        max_per_category=int(os.environ.get("OMNIFUSE_MAX_PER_CATEGORY", "4")),
        store_boost=float(os.environ.get("OMNIFUSE_STORE_BOOST", "0.3")),
        recommend_repeats=os.environ.get("OMNIFUSE_RECOMMEND_REPEATS", "0").strip().lower() in ("1", "true", "yes"),
        ingest_block_mb=_megabytes("OMNIFUSE_INGEST_BLOCK_MB", 1.0),
        ingest_max_line_kb=max(int(os.environ.get("OMNIFUSE_INGEST_MAX_LINE_KB", "1024")), 1),
        bi_role=os.environ.get("OMNIFUSE_BI_ROLE", "omnifuse_bi"),
        bi_password=os.environ.get("OMNIFUSE_BI_PASSWORD") or None,
        alert_notifier=os.environ.get("OMNIFUSE_ALERT_NOTIFIER") or None,
        alert_notifier_kwargs=os.environ.get("OMNIFUSE_ALERT_NOTIFIER_KWARGS", "{}"),
        demo_verbose=os.environ.get("OMNIFUSE_DEMO_VERBOSE", "") not in ("", "0", "false", "False"),
        landing_conn_id=os.environ.get("OMNIFUSE_LANDING_CONN_ID") or None,
        top_k=_positive_int("OMNIFUSE_TOP_K", Settings.top_k),
        scoring_batch_size=_positive_int("OMNIFUSE_SCORING_BATCH_SIZE", Settings.scoring_batch_size),
        segments=_positive_int("OMNIFUSE_SEGMENTS", Settings.segments),
        data_docs=_choice("OMNIFUSE_DATA_DOCS", "always", ("always", "on_failure", "never")),
        mapping_dir=Path(os.environ["OMNIFUSE_MAPPING_DIR"]).resolve() if os.environ.get("OMNIFUSE_MAPPING_DIR")
        else None,
    )


@dataclass(frozen=True)
class Timeouts:
    """How long anything may wait (build with :func:`load_timeouts`); 0 means no limit.

    - ``OMNIFUSE_CONNECT_TIMEOUT_S``: opening a warehouse connection (default 10).
    - ``OMNIFUSE_STATEMENT_TIMEOUT_S``: one warehouse statement (default 7,200 = 2 h: a 20M-row publish or a
      year's backfill fits; a runaway query does not hold a worker forever).
    - ``OMNIFUSE_LOCK_TIMEOUT_S``: waiting for a lock, advisory locks included (default 600: a second run of the
      same date queues behind the first for at most 10 min, then fails with a lock timeout and is retried).
    - ``OMNIFUSE_TASK_TIMEOUT_S``: an Airflow task's ``execution_timeout`` (default 10,800 = 3 h).
    """

    connect_s: int = 10
    statement_s: int = 7_200
    lock_s: int = 600
    task_s: int = 10_800


def load_timeouts() -> Timeouts:
    """Read :class:`Timeouts` from the environment."""
    return Timeouts(
        connect_s=int(os.environ.get("OMNIFUSE_CONNECT_TIMEOUT_S", str(Timeouts.connect_s))),
        statement_s=int(os.environ.get("OMNIFUSE_STATEMENT_TIMEOUT_S", str(Timeouts.statement_s))),
        lock_s=int(os.environ.get("OMNIFUSE_LOCK_TIMEOUT_S", str(Timeouts.lock_s))),
        task_s=int(os.environ.get("OMNIFUSE_TASK_TIMEOUT_S", str(Timeouts.task_s))),
    )
