"""The model registry (``ml.model_registry``): every fused model version, one champion, and how it got there.

Guarantees:

- **every shop gets a champion**: when there is none yet and a run is not promoted (its model does not beat
  popularity beyond the noise), the best single model with the business rules — popularity when nothing
  beats it — is registered as a **baseline** champion (``<run_id>_baseline``, ``baseline = true``) with a
  reason saying so (:func:`record_baseline`); "no champion" is therefore only the state before the first
  retrain, and :class:`NoChampionError` (no retry can fix it) says what to run;
- a champion is never deleted (a trigger refuses it) nor replaced except by a promotion that beat it on the
  holdout beyond the noise (paired bootstrap over customers) and by ``OMNIFUSE_GATE_MARGIN``, and that beat
  the popularity baseline the same way;
- re-running a date writes a new version (``retrain_YYYYMMDD_v2`` …); old versions and their artifacts stay
  for audit and rollback;
- monotonic: a version of an older business date never replaces a newer champion unless forced
  (``force=True``, the DAG conf ``{"force": true}`` or ``OMNIFUSE_FORCE_CHAMPION=1``);
- :func:`rollback` restores the champion that the current one replaced (``omnifuse model rollback``).

How a challenger meets the champion: both are scored on the challenger's holdout customers that both know,
with a fit that saw nothing of that holdout — the champion's served fit (``fused/``) when its business date
is before the holdout, else its evaluated fit (``evaluated/``, fitted before its own split date).

A registered version's artifacts are anchored: ``artifact_checksums`` holds the sha256 of the ``MANIFEST.json``
of its ``fused/`` and ``evaluated/`` folders, taken at registration; every load (:func:`load_fused`: the gate,
publishing, rollback) checks the manifest against it, and a training step re-run for a registered run refuses
to write (``omnifuse.training_run.RegisteredRunError``).

Publishing reads the champion through :func:`current_champion` / :func:`champion_info`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TypedDict

import numpy as np
import psycopg2.extensions

from omnifuse import warehouse
from omnifuse.artifacts import ArtifactError, manifest_digest, read_file
from omnifuse.dataset import Dataset
from omnifuse.evaluate import Split, paired_lower_bound, per_customer
from omnifuse.fusion import FusedModel

log = logging.getLogger(__name__)


class NoChampionError(LookupError):
    """``ml.model_registry`` has no champion: no retrain has registered one yet. No retry can fix it."""


NO_CHAMPION = ("ml.model_registry has no champion: no retrain has finished yet (every finished retrain registers "
               "one: its model, or the baseline when it does not beat popularity beyond the noise). Run "
               'omnifuse_retrain for the latest loaded business date (trigger it with {"business_date": '
               '"YYYY-MM-DD"}); omnifuse_publish runs once it has registered a champion.')


@dataclass(frozen=True)
class Champion:
    model_version: str
    artifact_path: Path
    business_date: date
    split_date: date
    reason: str = ""
    baseline: bool = False
    checksums: dict | None = None  # folder ("fused", "evaluated") -> sha256 of its MANIFEST.json


def current_champion(url: str | None = None) -> tuple[str, Path, date]:
    """(model_version, artifact folder, business_date) of the champion; :class:`NoChampionError` when there is
    none.

    The folder holds ``fused/`` (the served fit, refitted up to the business date) and ``dataset.npz``.
    """
    champ = champion_info(url)
    if champ is None:
        raise NoChampionError(NO_CHAMPION)
    return champ.model_version, champ.artifact_path, champ.business_date


_VERSION = ("select g.model_version, g.artifact_path, g.business_date, r.split_date, g.reason, g.baseline, "
            "g.artifact_checksums from ml.model_registry g join ml.training_runs r using (run_id) ")


def champion_info(url: str | None, cur: psycopg2.extensions.cursor | None = None) -> Champion | None:
    """The champion with its split date, reason, baseline flag and checksums, or None (``cur``: read inside the
    caller's transaction)."""
    return _version(url, cur, "g.status = 'champion'", ())


def version_info(model_version: str, url: str | None = None) -> Champion | None:
    """Any registered version, as :class:`Champion` describes the champion (None when not registered)."""
    return _version(url, None, "g.model_version = %s", (model_version,))


def _version(url: str | None, cur: psycopg2.extensions.cursor | None, where: str, params: tuple) -> Champion | None:
    query = _VERSION + "where " + where
    if cur is not None:
        cur.execute(query, params)
        row = cur.fetchone()
    else:
        with warehouse.transaction(url) as c:
            c.execute(query, params)
            row = c.fetchone()
    return Champion(row[0], Path(row[1]), row[2], row[3], row[4], row[5], row[6]) if row else None


def load_fused(version: Champion, which: str = "fused") -> FusedModel:
    """The version's ``fused/`` (served) or ``evaluated/`` model, its manifest checked against the checksum the
    registry holds for it (``ArtifactError`` when it was rewritten after registration)."""
    expected = (version.checksums or {}).get(which)
    return FusedModel.load(version.artifact_path / which, manifest_sha256=expected)


def folder_checksums(folder: Path) -> dict[str, str]:
    """What :func:`record` stores for a version folder: the sha256 of ``fused/`` and ``evaluated/``'s manifests."""
    return {which: manifest_digest(folder / which) for which in ("fused", "evaluated")}


def _index_map(ids_from: np.ndarray, ids_to: np.ndarray) -> np.ndarray:
    """Position of each ``ids_from`` in ``ids_to`` (-1 when absent); ``ids_to`` sorted as strings."""
    to = ids_to.astype(str)
    order = np.argsort(to, kind="stable")
    pos = np.searchsorted(to[order], ids_from.astype(str))
    pos = np.minimum(pos, len(to) - 1) if len(to) else np.zeros(len(ids_from), dtype=np.int64)
    found = order[pos] if len(to) else pos
    ok = (to[found] == ids_from.astype(str)) if len(to) else np.zeros(len(ids_from), bool)
    return np.where(ok, found, -1)


def champion_on_holdout(champ: Champion, data: Dataset, holdout: Split, split_date: date, k: int = 10,
                        repeats: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-customer NDCG@k of the champion on this holdout: (rows of ``holdout.users`` it knows, values, which
    fit), excluding what the holdout excludes (``repeats``: ``OMNIFUSE_RECOMMEND_REPEATS``). Raises
    ``ArtifactError`` when its artifacts are missing or corrupt, ``ValueError`` when it has seen the holdout."""
    if champ.business_date < split_date:
        folder, which = "fused", "served fit"
    elif champ.split_date <= split_date:
        folder, which = "evaluated", "evaluated fit"
    else:
        raise ValueError(f"champion {champ.model_version} was fitted on days up to {champ.split_date - timedelta(1)}"
                         f", inside this holdout (from {split_date})")
    fused = load_fused(champ, folder)
    old = Dataset.load(champ.artifact_path / "dataset.npz")
    hist = old.before(split_date)
    pos = _index_map(data.customers[holdout.users], old.customers)
    known = np.flatnonzero(pos >= 0)
    if not len(known):
        return known, np.zeros(0), which
    exclude = hist.not_recommendable(repeats)
    recs_old, _, _ = fused.rank(hist, pos[known], exclude, k)
    item_map = _index_map(old.products, data.products)
    recs = np.where(recs_old >= 0, item_map[np.maximum(recs_old, 0)], -1)
    return known, per_customer(recs, holdout.relevant[known], k)["ndcg"], which


@dataclass
class Decision:
    promote: bool
    reason: str
    previous: str | None


def judge(run_id: str, challenger: np.ndarray, popularity: np.ndarray, champion: tuple | None, margin: float,
          seed: int, older: str | None, forced: bool) -> Decision:
    """The gate's rule, as a pure function of per-customer NDCG@10 arrays.

    ``champion``: (version, rows of the challenger's customers it knows, its values, which fit) or None;
    ``older``: the newer champion's description when this version's business date is older than its.
    """
    reasons, promote = [], True
    mean_c, mean_p = float(challenger.mean()), float(popularity.mean())
    lb = paired_lower_bound(challenger, popularity, seed)
    if mean_c < mean_p * (1 + margin) or lb <= 0:
        promote = False
        reasons.append(f"NDCG@10 {mean_c:.4f} does not beat popularity {mean_p:.4f} by {margin:.0%} beyond the noise "
                       f"(90 % lower bound of the gain {lb:+.4f})")
    if older and not forced:
        promote = False
        reasons.append(f"its business date is older than the champion's ({older}); force to replace it")
    beat = ""
    if champion is not None:
        version, rows, values, which = champion
        if len(rows):
            mine = challenger[rows]
            lb_c = paired_lower_bound(mine, values, seed)
            if float(mine.mean()) < float(values.mean()) * (1 + margin) or lb_c <= 0:
                promote = False
                reasons.append(f"on the {len(rows)} customers both know, NDCG@10 {mine.mean():.4f} does not beat "
                               f"champion {version} ({values.mean():.4f}, {which}) by {margin:.0%} beyond the noise "
                               f"(90 % lower bound of the gain {lb_c:+.4f})")
            else:
                beat = (f" and champion {version} ({values.mean():.4f}, {which}; gain lower bound {lb_c:+.4f}) on "
                        f"{len(rows)} customers")
        else:
            beat = f" (champion {version} knows none of the holdout's customers)"
    previous = champion[0] if champion else None
    if promote:
        reason = (f"promoted: NDCG@10 {mean_c:.4f} beats popularity {mean_p:.4f}{beat}"
                  + ("" if champion else " (no previous champion)") + f" by at least {margin:.0%} beyond the noise"
                  + (" (forced over a newer champion)" if older and forced else ""))
    else:
        reason = "rejected: " + "; ".join(reasons) + (f"; champion {previous} stays" if previous else "")
    return Decision(promote, reason, previous)


def record(cur: psycopg2.extensions.cursor, *,
           run_id: str, business_date: date, variant: str, base_models: list[str], served_model: str,
           train_start: date, split_date: date, artifact_dir: Path, metrics: dict, decision: Decision,
           expected_champion: str | None, forced: bool, checksums: dict[str, str] | None = None) -> str | None:
    """Write the version's row (and the promotion) under the registry lock; returns the champion after it.

    ``checksums``: :func:`folder_checksums` of ``artifact_dir`` (taken from what the gate loaded).
    Raises ``RuntimeError`` (retry) if the champion changed since the decision was taken.
    """
    warehouse.lock(cur, "registry")
    now = champion_info(None, cur)
    if (now.model_version if now else None) != expected_champion:
        raise RuntimeError(f"the champion changed while {run_id} was gated ({expected_champion} -> "
                           f"{now.model_version if now else None}); retry the gate.")
    if decision.promote and now is not None:
        cur.execute("update ml.model_registry set status = 'retired', decided_at = now(), reason = reason || %s "
                    "where status = 'champion'", (f" | retired by {run_id}",))
    cur.execute(
        """
        insert into ml.model_registry (model_version, run_id, business_date, fusion_variant, base_models, data_window,
                                       metrics, artifact_path, status, reason, decided_at, served_model,
                                       evaluated_window, served_window, previous_champion, forced,
                                       artifact_checksums)
        values (%s, %s, %s, %s, %s, daterange(%s, %s, '[]'), %s, %s, %s, %s, now(), %s,
                daterange(%s, %s, '[]'), daterange(%s, %s, '[]'), %s, %s, %s)
        """,
        (run_id, run_id, business_date, variant, base_models, train_start, business_date, json.dumps(metrics),
         str(artifact_dir), "champion" if decision.promote else "rejected", decision.reason, served_model,
         train_start, split_date - timedelta(days=1), train_start, business_date,
         decision.previous if decision.promote else None, forced,
         json.dumps(checksums) if checksums is not None else None),
    )
    now = champion_info(None, cur)
    return now.model_version if now else None


def baseline_version(run_id: str) -> str:
    """The model version of ``run_id``'s baseline champion."""
    return f"{run_id}_baseline"


def record_baseline(cur: psycopg2.extensions.cursor, *, run_id: str, business_date: date, served_model: str,
                    base_models: list[str], train_start: date, split_date: date, folder: Path, metrics: dict,
                    reason: str) -> str:
    """Register ``folder`` (a run's baseline: one single model with the rules) as the champion, inside the
    caller's transaction, after :func:`record` (same registry lock); only when there is no champion.
    Returns its model version."""
    warehouse.lock(cur, "registry")
    now = champion_info(None, cur)
    if now is not None:
        raise RuntimeError(f"a champion ({now.model_version}) appeared while {run_id} was gated; retry the gate.")
    version = baseline_version(run_id)
    cur.execute(
        """
        insert into ml.model_registry (model_version, run_id, business_date, fusion_variant, base_models, data_window,
                                       metrics, artifact_path, status, reason, decided_at, served_model,
                                       evaluated_window, served_window, previous_champion, forced, baseline,
                                       artifact_checksums)
        values (%s, %s, %s, 'single', %s, daterange(%s, %s, '[]'), %s, %s, 'champion', %s, now(), %s,
                daterange(%s, %s, '[]'), daterange(%s, %s, '[]'), null, false, true, %s)
        """,
        (version, run_id, business_date, base_models, train_start, business_date, json.dumps(metrics), str(folder),
         reason, served_model, train_start, split_date - timedelta(days=1), train_start, business_date,
         json.dumps(folder_checksums(folder))),
    )
    return version


class GateDecision(TypedDict):
    """The gate's decision on a training run (``omnifuse.training_run.gate_champion``; :func:`existing` when a
    retried gate finds it already taken): the champion after it and why."""

    run_id: str
    business_date: str  # ISO date
    promoted: bool
    champion: str | None  # the champion's model version after the decision
    reason: str


def existing(url: str | None, run_id: str) -> GateDecision | None:
    """The registry's decision for ``run_id`` if it was already taken (a retried gate task)."""
    with warehouse.transaction(url) as cur:
        cur.execute("select status, reason, business_date from ml.model_registry where model_version = %s", (run_id,))
        row = cur.fetchone()
    if row is None:
        return None
    champ = champion_info(url)
    return GateDecision(run_id=run_id, business_date=row[2].isoformat(), promoted=row[0] in ("champion", "retired"),
                        champion=champ.model_version if champ else None, reason=row[1])


def rollback(url: str | None = None) -> dict:
    """Make the champion that the current one replaced the champion again; the current becomes 'retired'.

    Raises ``LookupError`` when there is no champion or it replaced none, ``ArtifactError`` when the previous
    champion's artifacts are missing or corrupt (nothing changes then).
    """
    with warehouse.transaction(url) as cur:
        warehouse.lock(cur, "registry")
        cur.execute("select model_version, previous_champion from ml.model_registry where status = 'champion'")
        row = cur.fetchone()
        if row is None:
            raise LookupError("ml.model_registry has no champion: nothing to roll back.")
        current, previous = row
        if previous is None:
            raise LookupError(f"champion {current} replaced no earlier champion: nothing to roll back to.")
        target = _version(None, cur, "g.model_version = %s", (previous,))
        assert target is not None  # previous_champion names a registered version
        load_fused(target)  # refuse to roll back onto a broken or rewritten artifact
        read_file(target.artifact_path / "dataset.npz")
        cur.execute("update ml.model_registry set status = 'retired', decided_at = now(), reason = reason || %s "
                    "where model_version = %s", (f" | rolled back to {previous}", current))
        cur.execute("update ml.model_registry set status = 'champion', decided_at = now(), reason = reason || %s "
                    "where model_version = %s", (f" | restored by rollback from {current}", previous))
    log.info("rolled back champion %s -> %s", current, previous)
    return {"from": current, "to": previous}


def cli_model(action: str, url: str | None = None) -> int:
    """``omnifuse model champion|rollback``: print the champion, or restore the previous one."""
    try:
        if action == "rollback":
            done = rollback(url)
            print(f"champion {done['from']} rolled back: {done['to']} is the champion again. Re-run omnifuse_publish "
                  "(with {\"force\": true} if its business date is older) to publish it.")
        else:
            version, folder, business_date = current_champion(url)
            print(f"{version}\t{business_date}\t{folder}")
    except (LookupError, ArtifactError) as exc:  # NoChampionError is a LookupError
        print(f"omnifuse model {action}: {exc}")
        return 1
    return 0


__all__ = ["ArtifactError", "Champion", "Decision", "NoChampionError", "baseline_version", "champion_info",
           "champion_on_holdout", "cli_model", "current_champion", "existing", "folder_checksums", "judge",
           "load_fused", "record", "record_baseline", "rollback", "version_info"]
