"""``make demo`` prints a readable summary: what libraries write (Python prints and warnings, logging, C++ code
writing straight to file descriptor 2, as TensorFlow's absl does) goes to the demo's log file instead."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_library_output_goes_to_the_log_and_only_the_summary_to_the_terminal(tmp_path):
    log = tmp_path / "logs" / "demo.log"
    script = textwrap.dedent(f"""
        import logging, os, sys, warnings
        from pathlib import Path
        from omnifuse.cli import library_output_to

        logging.basicConfig(stream=sys.stderr)
        with library_output_to(Path({str(log)!r})) as say:
            say("summary line")
            print("a task's print")
            logging.getLogger("great_expectations").warning("a GX warning")
            warnings.warn("a deprecation", DeprecationWarning, stacklevel=1)
            os.write(2, b"W0000 absl: written by C++ to fd 2\\n")
            sys.stderr.write("a traceback-like line\\n")
        print("after: back on the terminal")
    """)
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout == "summary line\nafter: back on the terminal\n"
    assert done.stderr == ""
    written = log.read_text()
    for line in ("a task's print", "a GX warning", "a deprecation", "absl: written by C++", "traceback-like"):
        assert line in written, line
    assert "summary line" not in written


def test_the_load_audit_table_stays_aligned_for_long_source_names():
    from omnifuse.report import format_audit

    row = {"business_date": "2010-11-01", "files": 1, "lines_read": 12, "rows_staged": 11, "rows_quarantined": 1,
           "duplicates_dropped": 0, "quarantine_by_reason": {"invalid_price": 1}}
    lines = format_audit([{**row, "channel": "store_locations"}, {**row, "channel": "web"}]).splitlines()
    # the numbers end where their header does, whatever the longest channel name
    lines_end = lines[0].index("lines") + len("lines")
    assert lines[2].index("12") + 2 == lines[3].index("12") + 2 == lines_end
