"""The landing contract cannot drift from the code: ``docs/landing.md`` and the JSON Schemas in
``include/omnifuse/landing/schemas`` against the source registry, the staging SQL, the mapping reader and what
the generator delivers."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tomllib
from datetime import date
from fnmatch import fnmatch
from pathlib import Path

import omnifuse
import pytest
from jsonschema import Draft202012Validator
from omnifuse import ingest, sources
from omnifuse.generate import MessConfig, WorldConfig, generate
from omnifuse.landing_csv import FORMATS, load_mapping
from omnifuse.manifest import write_manifest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "landing.md"
PACKAGE = Path(omnifuse.__file__).resolve().parent
SCHEMAS = PACKAGE / "landing" / "schemas"
SQL = PACKAGE / "sql"
D = date(2026, 11, 2)


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def _validator(name: str) -> Draft202012Validator:
    schema = _schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _reasons(sql_text: str) -> set[str]:
    """Quarantine reason literals of a staging statement: ``then '...'`` / ``else '...'`` inside the
    ``case when _parse_error ... end as reason`` block (and the interactions' ``case when copy_no > 1 ...`` reason)."""
    blocks = re.findall(r"case\s+when _parse_error is not null then _parse_error(.*?)\bend\s+as\s+reason", sql_text,
                        flags=re.S | re.I)
    blocks += re.findall(r"case when copy_no > 1 then '[^']+' else '[^']+' end,", sql_text)
    return {r for block in blocks for r in re.findall(r"(?:then|else)\s+'([^']+)'", block)}


def _required_everywhere(schema: dict) -> set[str]:
    """Every key named in a ``required`` list, nested objects included."""
    found = set(schema.get("required", ()))
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict) and prop.get("type") == "object":
            found |= _required_everywhere(prop)
    for rule in schema.get("allOf", ()):  # required for some event types only (if/then)
        for prop in rule.get("then", {}).get("properties", {}).values():
            found |= set(prop.get("required", ()))
    return found


def _copy_unescape(text: str) -> str | None:
    """A COPY text-format field back to its value (``\\N`` is NULL)."""
    if text == "\\N":
        return None
    out, i = [], 0
    table = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(table.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _csv_records(path: Path, source: sources.Source, mapping=None) -> list[tuple[dict | None, str | None]]:
    """(fields, parse error) per record of a landed CSV file, exactly as ingest COPYs them into raw."""
    lf = ingest.LandedFile(path, f"{source.folder}/{D}/{path.name}", path.stat().st_size, "x", 0)
    stream = b"".join(ingest._csv_rows(lf, source, D, ingest.FileLoad(), mapping)).decode()
    rows = []
    for row in stream.split("\n")[:-1]:
        parts = row.split("\t")
        assert len(parts) == 6, row
        fields = _copy_unescape(parts[4])
        rows.append((json.loads(fields) if fields is not None else None, _copy_unescape(parts[5])))
    return rows


def _ndjson_records(path: Path) -> list[object]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) if _is_json(line) else line for line in fh.read().splitlines()]


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _landed(landing: Path) -> list[tuple[sources.Source, Path]]:
    """(source, file) for every data file the world delivered, matched as ingest matches them."""
    out = []
    for source in sources.REGISTRY.values():
        for manifest in sorted((landing / source.folder).glob(f"*/{ingest.MANIFEST}")):
            for entry in json.loads(manifest.read_text())["files"]:
                if any(fnmatch(entry["name"], p) for p in source.patterns):
                    out.append((source, manifest.parent / entry["name"]))
    return out


# --- schemas against the registry and the staging SQL ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(sources.REGISTRY))
def test_every_source_has_a_schema_that_matches_the_registry(name):
    source = sources.REGISTRY[name]
    schema = _schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-omnifuse-contract-version"] == 1
    assert schema["x-omnifuse-folder"] == source.folder
    assert schema["x-omnifuse-files"] == list(source.patterns)
    assert schema["x-omnifuse-format"] == source.fmt
    missing_fields = {r.split(":", 1)[1] for r in _reasons((SQL / source.stage_sql).read_text())
                      if r.startswith("missing_field:")}
    assert missing_fields, f"{source.stage_sql} names no missing_field reason"
    if source.fmt == "csv":
        assert schema["required"] == list(source.required_columns)
        assert list(schema["properties"]) == list(source.columns)
        for column in missing_fields:  # staging refuses an empty value: the schema does too
            assert schema["properties"][column].get("minLength") == 1, (name, column)
    else:
        required = _required_everywhere(schema)
        assert missing_fields <= required, f"{name}: staging requires {sorted(missing_fields - required)}"
        id_key, type_key, ts_key = {"web": ("event_id", "type", "ts"),
                                    "mobile": ("id", "event", "timestamp_ms")}[name]
        assert {id_key, type_key, ts_key, "sku"} <= required


def test_the_schemas_folder_holds_exactly_the_registry_plus_manifest_and_mapping():
    names = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert names == set(sources.REGISTRY) | {"manifest", "mapping"}
    for name in ("manifest", "mapping"):
        assert _schema(name)["x-omnifuse-contract-version"] == 1
    assert '"landing/schemas/*.json"' in (ROOT / "pyproject.toml").read_text()


def test_event_types_in_the_schemas_are_those_the_staging_sql_maps():
    for name, key in (("web", "type"), ("mobile", "event")):
        sql_text = (SQL / sources.get(name).stage_sql).read_text()
        values = re.search(r"event_types \(source_event_type, event_type\) as \(\s*values(.*?)\n\)", sql_text,
                           flags=re.S)
        assert values, name
        mapped = re.findall(r"\('([^']+)', '[^']+'\)", values.group(1))
        assert _schema(name)["properties"][key]["enum"] == mapped
    social_sql = (SQL / sources.get("social").stage_sql).read_text()
    actions = re.search(r"action not in \(([^)]*)\)", social_sql)
    assert actions and _schema("social")["properties"]["action"]["enum"] == re.findall(r"'([^']+)'",
                                                                                      actions.group(1))


# --- the document --------------------------------------------------------------------------------------


def test_every_quarantine_reason_is_documented():
    doc = DOC.read_text()
    reasons: set[str] = set()
    for path in sorted((SQL / "ingest").glob("*.sql")):
        found = _reasons(path.read_text())
        assert found, f"{path.name}: no quarantine reason found (did the case ... end as reason block move?)"
        reasons |= found
    reasons |= _reasons((SQL / "interactions" / "core_interactions.sql").read_text())
    # reasons ingest.py gives before the SQL sees a line
    ingest_py = (PACKAGE / "ingest.py").read_text()
    parse_errors = {"nul_byte", "invalid_utf8", "wrong_field_count"}
    assert all(f'b"{r}"' in ingest_py for r in parse_errors)
    assert 'f"missing_column:{missing[0]}"' in ingest_py
    reasons |= parse_errors | {"missing_column:"}
    assert {"malformed_json", "clock_skew", "too_late", "duplicate_across_batches"} <= reasons
    undocumented = sorted(r for r in reasons if f"`{r}" not in doc)
    assert not undocumented, f"docs/landing.md does not mention {undocumented}"


def test_the_document_names_every_source_file_pattern_setting_and_command():
    doc = DOC.read_text()
    assert "Landing contract, version 1" in doc
    for source in sources.REGISTRY.values():
        for pattern in source.patterns:
            assert f"`{pattern}`" in doc, pattern
        for column in source.columns:
            assert f"`{column}`" in doc, (source.name, column)
        for alias in source.aliases:
            assert f"`{alias}`" in doc, (source.name, alias)
    for setting in ("OMNIFUSE_MAX_QUANTITY", "OMNIFUSE_PRICE_OUTLIER_FACTOR", "OMNIFUSE_MAX_PRICE_EUR",
                    "OMNIFUSE_NON_PRODUCT_SKUS", "OMNIFUSE_DEFAULT_CURRENCY", "OMNIFUSE_LATE_WINDOW_DAYS",
                    "OMNIFUSE_MAPPING_DIR"):
        assert setting in doc, setting
    for text in ("omnifuse manifest", "omnifuse backfill --from", "_manifest.json", '"files": []', '"@row"',
                 "version = 1"):
        assert text in doc, text


def _example(doc: str, label: str) -> str:
    """The fenced block right after ``<!-- example: label -->`` in docs/landing.md."""
    found = re.search(rf"<!-- example: {re.escape(label)} -->\s*```[a-z]*\n(.*?)```", doc, flags=re.S)
    assert found, f"docs/landing.md has no example {label!r}"
    return found.group(1)


def test_the_documented_mapping_example_loads_and_produces_contract_records(tmp_path):
    doc = DOC.read_text()
    mapping_text = _example(doc, "store.toml")
    _validator("mapping").validate(tomllib.loads(mapping_text))
    (tmp_path / "store.toml").write_text(mapping_text)
    mapping = load_mapping(tmp_path, "store")
    assert mapping is not None and mapping.delimiter == ";" and mapping.decimal == ","
    export = tmp_path / "pos-export.csv"
    export.write_text(_example(doc, "pos-export.csv"), encoding=mapping.encoding)
    rows = _csv_records(export, sources.get("store"), mapping)
    store = _validator("store")
    assert len(rows) >= 3
    for fields, error in rows:
        assert error is None and fields is not None
        assert not list(store.iter_errors(fields)), (fields, [e.message for e in store.iter_errors(fields)])
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:00", f["sold_at"]) for f, _ in rows)
    assert [f["line_no"] for f, _ in rows] == [str(i) for i in range(1, len(rows) + 1)]  # "@row"


def test_every_documented_toml_block_is_a_valid_mapping(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    validator = _validator("mapping")
    for i, block in enumerate(blocks):
        doc = tomllib.loads(block)
        validator.validate(doc)
        if "format" in doc:  # a standard export: read as a source that accepts that format
            folder = tmp_path / f"m{i}"
            folder.mkdir()
            name = sorted(FORMATS[doc["format"]])[0]
            (folder / f"{name}.toml").write_text(block)
            assert load_mapping(folder, name).format == doc["format"]
            continue
        (tmp_path / f"m{i}.toml").write_text(block)
        assert load_mapping(tmp_path, f"m{i}") is not None


# --- what the generator delivers validates ---------------------------------------------------------------


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for label, cfg in (
        ("messy", WorldConfig(customers=50, products=20, days=1)),
        ("clean", WorldConfig(customers=50, products=20, days=2, mess=MessConfig.clean())),
        ("wholesale", WorldConfig(customers=50, products=20, days=1, mess=MessConfig.clean(), profile="wholesale")),
    ):
        path = tmp_path_factory.mktemp(label)
        generate(cfg, path)
        out[label] = path
    return out


def _invalid_records(landing: Path) -> dict[str, int]:
    """Records that break their source's schema, per source (every record of every delivered file)."""
    bad: dict[str, int] = {}
    validators = {name: _validator(name) for name in sources.REGISTRY}
    for source, path in _landed(landing):
        if source.fmt == "csv":
            records = [fields if error is None else None for fields, error in _csv_records(path, source)]
        else:
            records = _ndjson_records(path)
        for record in records:
            if record is None or not validators[source.name].is_valid(record):
                bad[source.name] = bad.get(source.name, 0) + 1
    return bad


@pytest.mark.parametrize("label", ["clean", "wholesale"])
def test_a_clean_generated_delivery_validates_record_by_record(worlds, label):
    landing = worlds[label]
    assert {s.name for s, _ in _landed(landing)} == set(sources.REGISTRY)
    assert _invalid_records(landing) == {}


def test_in_a_messy_delivery_only_planted_mess_breaks_the_schemas(worlds):
    landing = worlds["messy"]
    bad = _invalid_records(landing)
    truth = json.loads((landing / "truth" / "mess" / f"{D}.json").read_text())
    for name, n in bad.items():
        assert name in truth, f"{name}: {n} records break the schema but the generator planted no mess there"
        planted = sum(truth[name]["expected"]["rows_quarantined_by_reason"].values())
        assert n <= planted, (name, n, truth[name])


def test_generated_manifests_validate_and_equal_omnifuse_manifest(worlds, tmp_path):
    validator = _validator("manifest")
    manifests = sorted(worlds["wholesale"].glob(f"*/*/{ingest.MANIFEST}")) + sorted(
        worlds["messy"].glob(f"*/*/{ingest.MANIFEST}"))
    assert manifests
    for manifest in manifests:
        body = json.loads(manifest.read_text())
        validator.validate(body)
        copy = tmp_path / manifest.parent.parent.parent.name / manifest.parent.parent.name / manifest.parent.name
        shutil.copytree(manifest.parent, copy)
        (copy / ingest.MANIFEST).unlink()
        assert write_manifest(copy) == body, manifest  # `omnifuse manifest` counts data_lines as the sender does


def test_an_empty_delivery_is_a_valid_manifest(tmp_path):
    assert write_manifest(tmp_path) == {"files": []}
    _validator("manifest").validate({"files": []})
