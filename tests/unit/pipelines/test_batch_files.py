from __future__ import annotations

from pathlib import Path

from relaygate.pipelines.batch import BadLine, BatchItem, done_ids, read_items


def test_items_come_from_plain_lines_and_event_bodies_and_bad_lines_are_numbered() -> None:
    lines = [
        '{"id": "a", "content": "x", "lang": "en"}',
        "",
        '{"event_id": 7, "data": {"content": "y"}}',
        "{oops",
        '["not", "an", "object"]',
        '{"content": "no id"}',
        '{"id": "b", "data": "text"}',
    ]
    read = list(read_items(lines))
    bad_json = read.pop(2)
    assert isinstance(bad_json, BadLine) and bad_json.number == 4
    assert bad_json.problem.startswith("not valid JSON")
    assert read == [
        BatchItem("a", {"content": "x", "lang": "en"}),
        BatchItem("7", {"content": "y"}),
        BadLine(5, "not a JSON object"),
        BadLine(6, "no id (or event_id): a non-empty string or number"),
        BadLine(7, "data must be a JSON object"),
    ]


def test_done_ids_drop_a_line_cut_off_mid_write(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    assert done_ids(output) == set()
    output.write_text('{"id": "a", "status": "succeeded"}\n{"id": "b", "stat')
    assert done_ids(output) == {"a"}
    assert output.read_text() == '{"id": "a", "status": "succeeded"}\n'
